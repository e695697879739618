"""Student text format, shared with the TypeScript runtime (keep exact).

prompt = "<|bos|>" + utterance + "<|sep|>"; target = compact call + "<|eos|>".
The template is written to `supertiny.json` in every model folder so the runtime never hard-codes it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
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
    def load(cls, folder: str | Path) -> StudentTemplate:
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


_CALL_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(")
_CALL_KEY = re.compile(r"(\(|, )([A-Za-z_][A-Za-z0-9_]*)=\"")


def call_tokens(calls: list[str], min_count: int) -> list[str]:
    """Whole-word pieces of compact calls, to be single tokens: `name(`, `key="` and ` key="`.

    With them the first generated token names the function (one choice among the task's functions rather
    than a spelling over several sub-word tokens) and a slot name costs one token, so answers take about
    40% fewer decoding steps. Only pieces seen at least `min_count` times are kept; the order is stable
    (most frequent first, then alphabetical).
    """
    counts: Counter = Counter()
    for call in calls:
        name = _CALL_NAME.match(call)
        if not name:
            continue
        counts[name.group(1) + "("] += 1
        # Keys are found only where the call's grammar puts them: after "(" or ", ". A quote inside a JSON
        # string value is escaped (\"), so `x="` never matches inside a value.
        for opener, key in _CALL_KEY.findall(call):
            counts[(" " if opener == ", " else "") + key + '="'] += 1
    return [piece for piece, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]


class CallParseError(ValueError):
    """The text is not a compact call; the message says where, as tasks/call-format.ts parseCall does."""


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# JavaScript's whitespace (its \s and String.prototype.trim), which Python's str.isspace and str.strip do not
# match: U+FEFF is whitespace there and U+001C-U+001F and U+0085 are not (test/golden/task-rules).
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_SPACES = re.compile(f"[{_JS_SPACE}]+")
_JS_TRIM = re.compile(f"^[{_JS_SPACE}]+|[{_JS_SPACE}]+$")


def _is_js_space(ch: str) -> bool:
    return _JS_SPACES.fullmatch(ch) is not None


def parse_compact_call(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The inverse of `compact_call`: (name, [(key, value), ...]) in order; a key may repeat.

    Mirrors parseCall in tasks/call-format.ts (whitespace between tokens tolerated, values are JSON strings).
    """
    s = _JS_TRIM.sub("", text)
    i = 0

    def skip_space() -> None:
        nonlocal i
        while i < len(s) and _is_js_space(s[i]):
            i += 1

    def identifier() -> str:
        nonlocal i
        match = _IDENTIFIER.match(s, i)
        if not match:
            return ""
        i = match.end()
        return match.group(0)

    if not s:
        raise CallParseError('empty text: expected a call like name(key="value")')
    name = identifier()
    if not name:
        raise CallParseError(f"expected a function name at column {i + 1}")
    skip_space()
    if i >= len(s) or s[i] != "(":
        raise CallParseError(f'expected "(" after function name "{name}" at column {i + 1}')
    i += 1
    skip_space()
    arguments: list[tuple[str, str]] = []
    if i < len(s) and s[i] == ")":
        i += 1
    else:
        while True:
            skip_space()
            key = identifier()
            if not key:
                raise CallParseError(f'expected a slot name at column {i + 1} in call to "{name}"')
            skip_space()
            if i >= len(s) or s[i] != "=":
                raise CallParseError(f'expected "=" after slot name "{key}" at column {i + 1}')
            i += 1
            skip_space()
            if i >= len(s) or s[i] != '"':
                raise CallParseError(f'expected a JSON string value for slot "{key}" at column {i + 1}')
            end = i + 1
            while end < len(s) and s[end] != '"':
                end += 2 if s[end] == "\\" else 1
            if end >= len(s):
                raise CallParseError(f'unterminated string value for slot "{key}" starting at column {i + 1}')
            try:
                value = json.loads(s[i : end + 1])
            except json.JSONDecodeError as e:
                raise CallParseError(f'invalid JSON string for slot "{key}" at column {i + 1}: {e.msg}') from None
            arguments.append((key, value))
            i = end + 1
            skip_space()
            if i < len(s) and s[i] == ",":
                i += 1
                continue
            if i < len(s) and s[i] == ")":
                i += 1
                break
            if i >= len(s):
                raise CallParseError(f'missing ")" at the end of the call to "{name}"')
            raise CallParseError(f'expected "," or ")" after the value of slot "{key}" at column {i + 1}')
    skip_space()
    if i < len(s):
        raise CallParseError(f'unexpected text after ")" at column {i + 1}: {s[i : i + 20]!r}')
    return name, arguments


def normalize_slot_value(value: str) -> str:
    """Slot values compare after trimming and collapsing whitespace (tasks/call-format.ts normalizeSlotValue)."""
    return _JS_SPACES.sub(" ", _JS_TRIM.sub("", value))
