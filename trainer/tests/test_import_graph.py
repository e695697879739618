"""The trainer's modules import each other without a circle, lazy imports inside functions included.

A family dispatch inside a decoder command (export -> encoder_export -> export) was such a circle; the
dispatch now lives in __main__.ENCODER_RUNNERS, and this keeps it so.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "supertiny_trainer"
PACKAGE_ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (an imported package is its __init__)."""
    files = sorted(PACKAGE_ROOT.rglob("*.py"))
    modules = {module_name(f) for f in files}
    graph: dict[str, set[str]] = {}
    for file in files:
        targets: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package_of(file).split(".")
                    base = base[: len(base) - (node.level - 1)]
                    base_name = ".".join(base + ([node.module] if node.module else []))
                else:
                    base_name = node.module or ""
                # `from . import x` imports the submodule x when there is one, else a name of the package.
                submodules = {f"{base_name}.{alias.name}" for alias in node.names} & modules
                targets.update(submodules or {base_name})
        graph[module_name(file)] = {t for t in targets if t in modules and t != module_name(file)}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_reads_the_package():
    graph = import_graph()
    assert "supertiny_trainer.commands.encoder_export" in graph
    assert "supertiny_trainer.commands.export" in graph["supertiny_trainer.commands.encoder_export"]


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_of_the_trainer_imports_itself_back():
    assert circles(import_graph()) == []


def test_decoder_commands_do_not_know_the_encoder():
    graph = import_graph()
    for command in ("export", "predict", "quantize"):
        encoder = {m for m in graph[f"supertiny_trainer.commands.{command}"] if "encoder" in m.rsplit(".", 1)[-1]}
        assert encoder == set(), f"commands.{command} imports {encoder}: dispatch on the family in __main__"
