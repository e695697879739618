"""Renumbering a tokenizer.json to a kept subset of its tokens: what both students' prune-vocab steps share."""

from __future__ import annotations

import json
from typing import Any

from ..core.errors import DataError

# Post-processors that name no token ids: copied as they are.
_ID_FREE_POST_PROCESSORS = {"ByteLevel"}


def _renumbered_post_processor(post: dict[str, Any], new_id: dict[str, int]) -> None:
    kind = post.get("type")
    if kind == "TemplateProcessing":
        for entry in post.get("special_tokens", {}).values():
            entry["ids"] = [new_id[t] for t in entry["tokens"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for name in ("sep", "cls"):
            post[name] = [post[name][0], new_id[post[name][0]]]
    elif kind == "Sequence":
        for step in post.get("processors", []):
            _renumbered_post_processor(step, new_id)
    elif kind not in _ID_FREE_POST_PROCESSORS:
        raise DataError(f"tokenizer.json: post-processor {kind!r} is not supported by vocabulary pruning")


def renumbered_tokenizer(tokenizer_json: dict[str, Any], kept: list[str]) -> dict[str, Any]:
    """tokenizer.json with the kept tokens renumbered 0..n-1 and every id that names a token updated.

    The model's vocabulary keeps only tokens it had (a BPE model lists added tokens such as <|bos|> outside
    it); merges, where the model has them, are the caller's to filter.
    """
    new_id = {token: i for i, token in enumerate(kept)}
    out = json.loads(json.dumps(tokenizer_json))
    old_vocab = tokenizer_json["model"]["vocab"]
    out["model"]["vocab"] = {token: i for token, i in new_id.items() if token in old_vocab}
    for token in out.get("added_tokens", []):
        token["id"] = new_id[token["content"]]
    if out.get("post_processor"):
        _renumbered_post_processor(out["post_processor"], new_id)
    padding = out.get("padding")
    if padding and padding.get("pad_token") in new_id:
        padding["pad_id"] = new_id[padding["pad_token"]]
    return out
