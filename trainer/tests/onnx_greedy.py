"""Greedy decoding of an exported student with ONNX Runtime and its KV cache, as the TypeScript runtime does it.

Reads only the files beside model.onnx (tokenizer.json, supertiny.json, onnx_io.json).
Also used by scripts/bench-trainer.py to score the int8 model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class OnnxStudent:
    def __init__(self, folder: str | Path, threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.io = json.loads((folder / "onnx_io.json").read_text())
        self.template = json.loads((folder / "supertiny.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def generate(self, utterances: list[str], max_new_tokens: int = 48) -> list[str]:
        io, template = self.io, self.template
        prompts = [template["prompt_prefix"] + u + template["prompt_suffix"] for u in utterances]
        encoded = [e.ids for e in self.tokenizer.encode_batch(prompts, add_special_tokens=False)]
        batch, width = len(encoded), max(len(ids) for ids in encoded)
        input_ids = np.full((batch, width), io["pad_token_id"], dtype=np.int64)
        mask = np.zeros((batch, width), dtype=np.int64)
        for row, ids in enumerate(encoded):  # left padding
            input_ids[row, width - len(ids) :] = ids
            mask[row, width - len(ids) :] = 1
        positions = np.clip(mask.cumsum(-1) - 1, 0, None)
        past = {
            name: np.zeros((batch, io["num_kv_heads"], 0, io["head_dim"]), dtype=np.float32)
            for name in io["inputs"][3:]
        }
        generated = [[] for _ in range(batch)]
        finished = np.zeros(batch, dtype=bool)
        for _ in range(max_new_tokens):
            outputs = self.session.run(
                None, {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions, **past}
            )
            next_ids = outputs[0][:, -1, :].argmax(-1)
            for row in range(batch):
                if not finished[row]:
                    if next_ids[row] == io["eos_token_id"]:
                        finished[row] = True
                    else:
                        generated[row].append(int(next_ids[row]))
            if finished.all():
                break
            past = dict(zip(io["inputs"][3:], outputs[1:], strict=True))
            input_ids = next_ids[:, None].astype(np.int64)
            mask = np.concatenate([mask, np.ones((batch, 1), dtype=np.int64)], axis=1)
            positions = positions[:, -1:] + 1
        return [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]
