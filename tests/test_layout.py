"""The tree says where things live (README: Layout): csrc/ in folders by concern whose dependencies
point one way, each opening with its main header; the Python package importing itself one way at
import time."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
PKG = ROOT / "src" / "qwen35cpu"

# What each top folder of csrc/ may include from the others (its own files always). The same
# order as the static libraries in csrc/CMakeLists.txt.
ALLOWED: dict[str, set[str]] = {
    "runtime": set(),
    "quant": set(),
    "kernels": {"quant", "runtime"},
    "gguf": {"quant"},
    "model": {"gguf", "kernels", "quant", "runtime"},
    "python": {"gguf", "kernels", "model", "quant", "runtime"},
}
LIBRARY = {"q35_runtime": "runtime", "q35_quant": "quant", "q35_kernels": "kernels", "q35_gguf": "gguf",
           "q35_model": "model"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def sources() -> list[Path]:
    return sorted(p for p in CSRC.rglob("*") if p.suffix in {".h", ".cpp"})


def folder_of(path: Path) -> str:
    return path.relative_to(CSRC).parts[0]


def includes(path: Path) -> list[tuple[str, str]]:
    """(kind, name) of every #include: kind '"' for the project's, '<' for system headers."""
    return INCLUDE.findall(path.read_text(encoding="utf-8"))


def test_csrc_top_holds_at_most_three_files() -> None:
    top = sorted(p.name for p in CSRC.iterdir() if p.is_file())
    assert len(top) <= 3, top
    assert {p.name for p in CSRC.iterdir() if p.is_dir()} == set(ALLOWED)


FOLDERS = sorted({p.parent for p in sources()})


@pytest.mark.parametrize("folder", FOLDERS, ids=[str(p.relative_to(CSRC)) for p in FOLDERS])
def test_each_folder_opens_with_its_main_header(folder: Path) -> None:
    """FOLDER/FOLDER.h says what lives in the folder and what it may depend on."""
    rel = folder.relative_to(CSRC).as_posix()
    main = folder / f"{folder.name}.h"
    assert main.exists(), f"csrc/{rel} has no main header {main.name}"
    text = main.read_text(encoding="utf-8")
    assert text.startswith(f"// {rel}/: "), f"{main.relative_to(ROOT)} does not open with '// {rel}/: ...'"
    head = text[: text.index("#pragma once")]
    assert "Depends on:" in head, f"{main.relative_to(ROOT)} does not say what the folder depends on"


def test_includes_point_one_way() -> None:
    bad = []
    for path in sources():
        own = folder_of(path)
        for kind, name in includes(path):
            if kind == "<":
                if name.startswith("pybind11/") and own != "python":
                    bad.append(f"{path.relative_to(CSRC)} includes <{name}>: only python/ knows Python")
                continue
            target = CSRC / name
            assert target.exists(), f"{path.relative_to(CSRC)} includes \"{name}\", which is not csrc/{name}"
            dep = name.split("/")[0]
            if dep != own and dep not in ALLOWED[own]:
                allowed = sorted(ALLOWED[own])
                bad.append(f"{path.relative_to(CSRC)} includes \"{name}\": {own}/ may use {allowed}")
            if name == "model/layers.h" and own != "model":
                bad.append(f"{path.relative_to(CSRC)} includes model/layers.h, which is internal to model/")
    assert not bad, "\n".join(bad)


def cmake_folder(folder: str) -> tuple[set[str], set[str]]:
    """(sources listed, csrc folders linked) of csrc/FOLDER/CMakeLists.txt."""
    text = (CSRC / folder / "CMakeLists.txt").read_text(encoding="utf-8")
    listed = set(re.findall(r"[\w/]+\.cpp", text))
    links: set[str] = set()
    for m in re.finditer(r"LINKS([^)]*)\)", text):
        links |= {LIBRARY[w] for w in m.group(1).split() if w in LIBRARY}
    return listed, links


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_each_folder_builds_its_own_sources_and_links_one_way(folder: str) -> None:
    listed, links = cmake_folder(folder)
    have = {p.relative_to(CSRC / folder).as_posix() for p in (CSRC / folder).rglob("*.cpp")}
    assert listed == have, f"csrc/{folder}/CMakeLists.txt lists {sorted(listed)}; the folder: {sorted(have)}"
    assert links <= ALLOWED[folder], f"{folder}/ links {sorted(links - ALLOWED[folder])}, which it may not"


# ---------------------------------------------------------------- Python


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_time_statements(body: Iterable[ast.stmt]) -> Iterable[ast.stmt]:
    """The statements run when the module is imported: not function bodies, not TYPE_CHECKING."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If):
            if not is_type_checking(node.test):
                yield from import_time_statements(node.body)
            yield from import_time_statements(node.orelse)
        elif isinstance(node, (ast.Try, ast.With, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody"):
                yield from import_time_statements(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                yield from import_time_statements(handler.body)
        else:
            yield node


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in import_time_statements(ast.parse(path.read_text(encoding="utf-8")).body):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            graph[mod] |= {t for t in targets if t in files and t != mod}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return [*path[path.index(n):], n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_python_modules_import_one_way_at_import_time() -> None:
    graph = import_graph()
    # the parser sees the edges there are
    assert graph["qwen35cpu.chat"] >= {"qwen35cpu.generate", "qwen35cpu.chat_template"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_model_does_not_import_the_chat_layer_at_import_time() -> None:
    """Model's chat conveniences import the chat module inside their functions: the dependency
    points from chat to the model."""
    graph = import_graph()
    assert "qwen35cpu.chat" not in graph["qwen35cpu.model"]
    assert not any(m.startswith("qwen35cpu.commands") for m in graph if m in graph["qwen35cpu.model"])


def test_cli_commands_stay_thin() -> None:
    """A command parses its arguments and calls the library; the library never imports commands."""
    graph = import_graph()
    for mod, deps in graph.items():
        if not mod.startswith("qwen35cpu.commands") and mod != "qwen35cpu.cli":
            assert not any(d.startswith("qwen35cpu.commands") for d in deps), mod
    for path in (PKG / "commands").glob("*.py"):
        n = len(path.read_text(encoding="utf-8").splitlines())
        assert n <= 200, f"commands/{path.name} has {n} lines: move the work into a library module"
