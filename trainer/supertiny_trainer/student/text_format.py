"""Student text format, shared with the TypeScript runtime (keep exact).

prompt = "<|bos|>" + utterance + "<|sep|>"; target = compact call + "<|eos|>".
The template is written to `supertiny.json` in every model folder so the runtime never hard-codes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PAD_TOKEN = "<|pad|>"
BOS_TOKEN = "<|bos|>"
SEP_TOKEN = "<|sep|>"
EOS_TOKEN = "<|eos|>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, SEP_TOKEN, EOS_TOKEN]

TEMPLATE_FILE = "supertiny.json"


@dataclass(frozen=True)
class StudentTemplate:
    prompt_prefix: str = BOS_TOKEN
    prompt_suffix: str = SEP_TOKEN
    eos_token: str = EOS_TOKEN
    pad_token: str = PAD_TOKEN
    target_format: str = "compact_call"
    version: int = 1

    def prompt(self, utterance: str) -> str:
        return self.prompt_prefix + utterance + self.prompt_suffix

    def target(self, call: str) -> str:
        return call + self.eos_token

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / TEMPLATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "StudentTemplate":
        path = Path(folder) / TEMPLATE_FILE
        if not path.is_file():
            return cls()
        raw = json.loads(path.read_text(encoding="utf-8"))
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def compact_call(name: str, arguments: dict[str, Any]) -> str:
    """`name(key="value", key2="value2")`, keys in the arguments' order, values as JSON literals.

    A slot given twice arrives as a list in the tool call's JSON (`{"currency_name": ["dollars", "euros"]}`)
    and is printed as a repeated key, as tasks/call-format.ts does: `currency_name="dollars", currency_name="euros"`.
    """
    rendered = ", ".join(
        f"{key}={json.dumps(item, ensure_ascii=False)}"
        for key, value in arguments.items()
        for item in (value if isinstance(value, list) else [value])
    )
    return f"{name}({rendered})"
