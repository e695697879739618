"""From the encoder's logits to a schema-valid call (ENCODER_FORMAT.md), shared by every backend.

The intent is the argmax of the intent logits. Tags are decoded by Viterbi over the word tokens only
([CLS], [SEP] and other special tokens are skipped), maximizing the sum of per-token log-softmax scores,
restricted to O and the B-/I- tags of the predicted intent's slots, with I-x allowed only after B-x or I-x.
A span's value is the text between its first token's start and its last token's end offset. Each value
head of the predicted intent gives its argmax value (its "absent" column excluded when the argument is
required; an optional one left out when "absent" wins); these arguments follow the spans, in head order.
A span of a number slot (`number_slots`) whose text is not a number (an integer for "integer") is dropped.
With `word_spans` (every training span covered whole words), a token that follows the previous one with no
character between them (the same word) takes I-x after B-x or I-x, O after O, never B-: a span covers whole words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from .encoder import EncoderLabels


@dataclass(frozen=True)
class DecodedCall:
    name: str
    arguments: list[tuple[str, str]]  # (slot, value) in the order of the values in the utterance

    def compact(self) -> str:
        """The compact call format (text_format.compact_call), one key=value pair per span, in text order."""
        rendered = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in self.arguments)
        return f"{self.name}({rendered})"


NUMBER_TEXT = {"integer": re.compile(r"-?(0|[1-9]\d*)"), "number": re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")}


class TagDecoder:
    def __init__(self, labels: EncoderLabels):
        self.labels = labels
        self.tag_index = {tag: i for i, tag in enumerate(labels.tags)}
        # Per intent: the allowed tag ids, and for each of them the allowed previous tag ids (None = any).
        self.allowed: dict[str, np.ndarray] = {}
        for intent in labels.intents:
            ids = [0] + [self.tag_index[f"{p}-{slot}"] for slot in labels.intent_slots.get(intent, []) for p in "BI"]
            self.allowed[intent] = np.array(sorted(ids))

    def _transitions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start_ok[k], trans_ok[prev k, next k], in_word_ok[prev k, next k]) over the allowed tag ids;
        in_word_ok holds inside a word: O only after O, never B-x, I-x as anywhere."""
        tags = [self.labels.tags[i] for i in ids]
        start_ok = np.array([not t.startswith("I-") for t in tags])
        trans_ok = np.ones((len(ids), len(ids)), dtype=bool)
        in_word_ok = np.zeros((len(ids), len(ids)), dtype=bool)
        for j, t in enumerate(tags):
            if t.startswith("I-"):
                slot = t[2:]
                trans_ok[:, j] = [prev in (f"B-{slot}", f"I-{slot}") for prev in tags]
                in_word_ok[:, j] = trans_ok[:, j]
            elif t == "O":
                in_word_ok[:, j] = [prev == "O" for prev in tags]
        return start_ok, trans_ok, in_word_ok

    @staticmethod
    def log_softmax(tag_logits: np.ndarray) -> np.ndarray:
        logits = tag_logits.astype(np.float64)
        log_probs = logits - logits.max(-1, keepdims=True)
        return log_probs - np.log(np.exp(log_probs).sum(-1, keepdims=True))

    def viterbi(self, tag_logits: np.ndarray, intent: str, continues: list[bool] | None = None) -> list[int]:
        """Best valid tag id sequence for `tag_logits` [tokens, n_tags] (word tokens only). Where
        `continues[t]`, token t is in the same word as token t - 1 and keeps its span or its O."""
        if len(tag_logits) == 0:
            return []
        ids = self.allowed[intent]
        scores = self.log_softmax(tag_logits)[:, ids]
        start_ok, trans_ok, in_word_ok = self._transitions(ids)
        impossible = -np.inf
        best = np.where(start_ok, scores[0], impossible)
        back = np.zeros((len(scores), len(ids)), dtype=np.int64)
        for position in range(1, len(scores)):
            allowed = in_word_ok if continues is not None and continues[position] else trans_ok
            candidates = np.where(allowed, best[:, None], impossible)  # [prev, next]
            back[position] = candidates.argmax(0)
            best = candidates.max(0) + scores[position]
        path = [int(best.argmax())]
        for position in range(len(scores) - 1, 0, -1):
            path.append(int(back[position, path[-1]]))
        return [int(ids[k]) for k in reversed(path)]

    def head_values(self, intent: str, value_logits: np.ndarray | None) -> list[tuple[str, str]]:
        """The value heads' arguments of `intent` from one input's value logits [n_values]."""
        arguments: list[tuple[str, str]] = []
        if not self.labels.value_heads:
            return arguments
        if value_logits is None:
            raise ValueError("the encoder has value heads: decoding needs its value logits")
        for head in self.labels.value_heads:
            if head["function"] != intent:
                continue
            logits = value_logits[head["offset"] : head["offset"] + 1 + len(head["values"])]
            best = 1 + int(np.argmax(logits[1:])) if head["required"] else int(np.argmax(logits))
            if best > 0:
                arguments.append((head["argument"], head["values"][best - 1]))
        return arguments

    def decode(
        self,
        text: str,
        intent_logits: np.ndarray,
        tag_logits: np.ndarray,
        offsets: list[tuple[int, int]],
        word_positions: list[int],
        value_logits: np.ndarray | None = None,
    ) -> DecodedCall:
        """`tag_logits` [seq, n_tags] of one input; `word_positions` index its non-special tokens."""
        intent = self.labels.intents[int(np.argmax(intent_logits))]
        word_logits = tag_logits[word_positions]
        continues = None
        if self.labels.word_spans:
            continues = [
                t > 0 and offsets[p][0] == offsets[word_positions[t - 1]][1] for t, p in enumerate(word_positions)
            ]
        path = self.viterbi(word_logits, intent, continues)
        token_log_probs = (
            [float(row[tag_id]) for row, tag_id in zip(self.log_softmax(word_logits), path, strict=True)]
            if path
            else []
        )
        spans: list[tuple[str, int, int, float]] = []  # slot, start, end, log prob of its least sure token
        span: list | None = None
        for position, (tag_id, log_prob) in enumerate(zip(path, token_log_probs, strict=True)):
            tag = self.labels.tags[tag_id]
            start, end = offsets[word_positions[position]]
            if tag.startswith("I-") and span is not None:
                span[2], span[3] = end, min(span[3], log_prob)
                continue
            if span is not None:
                spans.append(tuple(span))
                span = None
            if tag.startswith("B-"):
                span = [tag[2:], start, end, log_prob]
        if span is not None:
            spans.append(tuple(span))
        numbers = self.labels.number_slots.get(intent, {})
        if numbers:
            spans = [s for s in spans if s[0] not in numbers or NUMBER_TEXT[numbers[s[0]]].fullmatch(text[s[1] : s[2]])]
        # A slot the function takes once but tagged twice keeps its most probable span (as the TS runtime does).
        repeatable = set(self.labels.intent_repeatable.get(intent, []))
        best: dict[str, tuple] = {}
        for s in spans:
            if s[0] not in repeatable and (s[0] not in best or s[3] > best[s[0]][3]):
                best[s[0]] = s
        kept = [s for s in spans if s[0] in repeatable or best[s[0]] is s]
        return DecodedCall(
            intent, [(slot, text[start:end]) for slot, start, end, _ in kept] + self.head_values(intent, value_logits)
        )
