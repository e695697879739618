"""Fake block quantization of a decoder's weights while it trains (quantization-aware training).

Each function reproduces what `quantize` writes into the ONNX graph, in torch, so that a model trained through it
sees in training the very weights onnxruntime will compute with: MatMul weights as onnxruntime's MatMulNBits
quantizer rounds them (blocks along the input dimension, a scale and, unless symmetric, a zero point per block,
the range always holding 0), embedding rows as its symmetric GatherBlockQuantized. Gradients pass straight through
the rounding to the float weights (the straight-through estimator); the saved model keeps those float weights, and
`quantize` with the same settings turns them into exactly the 4-bit weights the training saw.
"""

from __future__ import annotations

import types
from typing import Any


def block_quantized(weight: Any, block_size: int, symmetric: bool, bits: int = 4) -> Any:
    """`weight` [rows, k] rounded to `bits`-bit blocks of `block_size` along k, as onnxruntime rounds a MatMul weight
    (its [k, rows] transpose) or a Gather table's rows; returned dequantized, without gradient tracking."""
    import torch
    import torch.nn.functional as F

    rows, k = weight.shape
    pad = (-k) % block_size  # onnxruntime pads a last partial block with zeros, which the range holds anyway
    w = (F.pad(weight, (0, pad)) if pad else weight).detach().float().reshape(rows, -1, block_size)
    levels = (1 << bits) - 1
    if symmetric:
        high, low = w.amax(-1, keepdim=True), w.amin(-1, keepdim=True)
        extreme = torch.where(high.abs() > low.abs(), high, low)
        mid = float(1 << (bits - 1))
        scale = extreme / -mid
        safe = torch.where(scale == 0, torch.ones_like(scale), scale)
        q = torch.where(scale == 0, torch.full_like(w, mid), torch.clamp(torch.round(w / safe + mid), 0, levels))
        values = (q - mid) * scale
    else:
        low = w.amin(-1, keepdim=True).clamp(max=0)
        high = w.amax(-1, keepdim=True).clamp(min=0)
        scale = (high - low) / levels
        safe = torch.where(scale == 0, torch.ones_like(scale), scale)
        zero = torch.clamp(torch.round(-low / safe), 0, levels)
        q = torch.clamp(torch.round(w / safe + zero), 0, levels)
        values = (q - zero) * scale
    return values.reshape(rows, -1)[:, :k].to(weight.dtype)


def straight_through(weight: Any, block_size: int, symmetric: bool, bits: int = 4) -> Any:
    """The block-quantized weight in the forward pass, the identity in the backward pass."""
    return weight + (block_quantized(weight, block_size, symmetric, bits) - weight).detach()


def _linear_forward(self, x):
    import torch.nn.functional as F

    return F.linear(x, straight_through(self.weight, *self.fake_quant), self.bias)


def _embedding_forward(self, ids):
    import torch.nn.functional as F

    weight = straight_through(self.weight, *self.fake_quant)
    return F.embedding(
        ids, weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse
    )


def add_fake_quantization(
    model: Any, *, block_size: int, embedding_block_size: int, symmetric: bool, bits: int = 4
) -> dict[str, int]:
    """Makes every Linear of a causal LM (attention, MLP, LM head) compute with `bits`-bit block weights (a zero
    point per block unless `symmetric`) and its input embedding with symmetric 4-bit rows in blocks of
    `embedding_block_size`, as `quantize` writes them. The forward methods are replaced on the instances; the
    parameters and the state dict are untouched, so saving and resuming work as for any model. Returns counts."""
    import torch

    linears = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.fake_quant = (block_size, symmetric, bits)
            module.forward = types.MethodType(_linear_forward, module)
            linears += 1
    embedding = model.get_input_embeddings()
    embedding.fake_quant = (embedding_block_size, True, 4)
    embedding.forward = types.MethodType(_embedding_forward, embedding)
    return {"fake_quantized_linears": linears, "fake_quantized_embeddings": 1}
