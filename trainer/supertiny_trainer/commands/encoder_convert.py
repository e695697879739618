"""`encoder-convert`: a BERT encoder in ONNX (all-MiniLM-L6-v2 from the Maven jar) -> a Hugging Face folder.

The ONNX graph keeps the parameter names of its PyTorch origin except for the MatMul weights, which the
exporter left unnamed (`onnx::MatMul_787`) and stored as [in, out]: each is named after the bias its MatMul's
output is added to, and transposed into nn.Linear's [out, in]. Shapes give the config; the head count comes
from the attention Reshape constants ([heads, head_dim]). The tokenizer is saved with padding off (the
jar's file pads every input to 128). The result is checked against onnxruntime on fixed sentences.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.checkpoints import atomic_output_dir
from ..core.command import CommandResult, RunContext
from ..core.config import require_positive
from ..core.errors import ConfigError, DataError, MissingModelError, TrainerError
from ..core.runtime import set_threads

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_ONNX = REPOSITORY_ROOT / ".tools" / "minilm" / "all-minilm-l6-v2.onnx"
DEFAULT_TOKENIZER = REPOSITORY_ROOT / ".tools" / "minilm" / "all-minilm-l6-v2-tokenizer.json"

CHECK_SENTENCES = [
    "wake me up at five am this week",
    "what's the weather like in Berlin tomorrow?",
    "Play Bohemian Rhapsody by Queen",
    "olly, turn the lights off in the kitchen and remind me to call mum at 6:30pm",
]

_LAYER_NAME = re.compile(r"^encoder\.layer\.(\d+)\.")


@dataclass
class EncoderConvertConfig:
    onnx: str = ""  # default: .tools/minilm/all-minilm-l6-v2.onnx of this repository (scripts/setup.sh)
    tokenizer: str = ""  # default: .tools/minilm/all-minilm-l6-v2-tokenizer.json
    max_length: int = 128  # the tokenizer's truncation
    num_attention_heads: int | None = None  # only when the graph does not tell (checked against onnxruntime)
    atol: float = 1e-4  # max abs hidden-state difference accepted against onnxruntime
    num_threads: int | None = None

    def validate(self) -> None:
        require_positive(self, "max_length", "num_attention_heads", "atol", "num_threads")


class ConversionMismatch(TrainerError):
    kind = "internal"


def _initializers(graph: Any) -> dict[str, Any]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def _constants(graph: Any) -> dict[str, Any]:
    from onnx import numpy_helper

    return {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t)
        for n in graph.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].HasField("t")
    }


def bert_state_dict(graph: Any) -> dict[str, Any]:
    """Parameter name -> numpy array in BertModel's layout (unnamed MatMul weights named by their bias)."""
    initializers = _initializers(graph)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    state = {
        name: array
        for name, array in initializers.items()
        if not name.startswith("onnx::") and name != "embeddings.position_ids"
    }
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        weights = [name for name in node.input if name in initializers]
        if not weights:
            continue
        biases = [
            name
            for add in consumers.get(node.output[0], [])
            if add.op_type == "Add"
            for name in add.input
            if name in initializers and name.endswith(".bias")
        ]
        if len(biases) != 1:
            raise DataError(
                f"MatMul {node.name or node.output[0]} ({weights[0]}) is not followed by one bias Add; "
                "cannot name its weight"
            )
        state[biases[0][: -len(".bias")] + ".weight"] = initializers[weights[0]].T.copy()
    return state


def attention_heads(graph: Any, hidden_size: int) -> int | None:
    """The [heads, head_dim] pair of the attention Reshape shapes (Concat constants), if the graph has one."""
    constants = _constants(graph)
    for node in graph.node:
        if node.op_type != "Concat":
            continue
        values = [constants[name].reshape(-1).tolist() for name in node.input if name in constants]
        flat = [int(v) for value in values for v in value]
        if len(flat) == 2 and flat[0] * flat[1] == hidden_size and flat[0] > 1:
            return flat[0]
    return None


def layer_norm_eps(graph: Any) -> float:
    constants = _constants(graph)
    for node in graph.node:
        if node.op_type == "LayerNormalization":
            return next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        if node.op_type == "Add":
            for name in node.input:
                value = constants.get(name)
                if value is not None and value.size == 1 and 0 < float(value) < 1e-3:
                    return float(value)
    return 1e-12


def bert_config(state: dict[str, Any], heads: int, eps: float) -> Any:
    from transformers import BertConfig

    layers = 1 + max((int(m.group(1)) for name in state if (m := _LAYER_NAME.match(name))), default=-1)
    vocab_size, hidden_size = state["embeddings.word_embeddings.weight"].shape
    if hidden_size % heads:
        raise ConfigError(f"hidden size {hidden_size} is not divisible by num_attention_heads {heads}")
    return BertConfig(
        vocab_size=int(vocab_size),
        hidden_size=int(hidden_size),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=int(state["encoder.layer.0.intermediate.dense.weight"].shape[0]),
        max_position_embeddings=int(state["embeddings.position_embeddings.weight"].shape[0]),
        type_vocab_size=int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        layer_norm_eps=eps,
        hidden_act="gelu",
        architectures=["BertModel"],
    )


class OnnxBertConverter:
    def __init__(self, config: EncoderConvertConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        import onnx
        import torch
        from tokenizers import Tokenizer
        from transformers import BertModel

        set_threads(self.config.num_threads)
        onnx_path = Path(self.config.onnx) if self.config.onnx else DEFAULT_ONNX
        tokenizer_path = Path(self.config.tokenizer) if self.config.tokenizer else DEFAULT_TOKENIZER
        for path, what in ((onnx_path, "onnx"), (tokenizer_path, "tokenizer")):
            if not path.is_file():
                raise MissingModelError(
                    f"config field '{what}': file not found: {path} (scripts/setup.sh fetches "
                    "all-MiniLM-L6-v2 into .tools/minilm)"
                )
        started = time.monotonic()
        graph = onnx.load(str(onnx_path)).graph
        input_names = [i.name for i in graph.input]
        if input_names[:2] != ["input_ids", "attention_mask"]:
            raise DataError(
                f"{onnx_path}: expected inputs input_ids, attention_mask[, token_type_ids], got {input_names}"
            )
        state = bert_state_dict(graph)
        hidden_size = int(state["embeddings.word_embeddings.weight"].shape[1])
        heads = self.config.num_attention_heads or attention_heads(graph, hidden_size)
        if heads is None:
            raise ConfigError(f"{onnx_path}: the attention head count is not in the graph; set 'num_attention_heads'")
        config = bert_config(state, heads, layer_norm_eps(graph))
        model = BertModel(config, add_pooling_layer=False).eval()
        missing, unexpected = model.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)
        missing = [k for k in missing if k not in ("embeddings.position_ids", "embeddings.token_type_ids")]
        if missing or unexpected:
            raise DataError(f"{onnx_path}: weights do not fit BertModel: missing {missing}, unexpected {unexpected}")

        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.config.max_length)
        destination = self.context.run_dir / "model"
        with atomic_output_dir(destination) as staging:
            model.save_pretrained(str(staging))
            tokenizer.save(str(staging / "tokenizer.json"))
            diff = hidden_state_difference(staging, onnx_path, CHECK_SENTENCES)
            if not diff <= self.config.atol:
                raise ConversionMismatch(
                    f"converted hidden states differ from onnxruntime by {diff:.3g} (> atol {self.config.atol})"
                )
        return CommandResult(
            metrics={
                "max_abs_diff": diff,
                "atol": self.config.atol,
                "parameters": sum(p.numel() for p in model.parameters()),
                "vocab_size": config.vocab_size,
                "hidden_size": config.hidden_size,
                "num_layers": config.num_hidden_layers,
                "num_attention_heads": config.num_attention_heads,
                "convert_s": round(time.monotonic() - started, 2),
            },
            outputs={"model": str(destination), "tokenizer_json": str(destination / "tokenizer.json")},
        )


def hidden_state_difference(folder: Path, onnx_path: Path, sentences: list[str]) -> float:
    """Max abs difference of last hidden states (real tokens only): transformers on `folder` vs onnxruntime."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0)  # one padded batch, masked
    encodings = tokenizer.encode_batch(sentences)
    feed = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    expected = session.run(None, {k: v for k, v in feed.items() if k in wanted})[0]
    model = BertModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
    with torch.no_grad():
        actual = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).last_hidden_state.numpy()
    real = feed["attention_mask"].astype(bool)
    return float(np.abs(expected - actual)[real].max())
