"""The package's shape: no import cycles, short functions, few top-level modules.

Read from the source with :mod:`ast` (nothing is imported), so these hold for
code paths the other tests never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "livebg"
TOP_LEVEL = {"cli", "config", "types", "stats", "processor", "factory", "__init__", "__main__"}
MAX_LINES = 80


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(mod: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def module_imports(mod: str, path: Path, known: set[str]) -> set[str]:
    """livebg modules that ``mod`` imports, at module level or inside functions.

    A function-local import is still an edge: it only hides a cycle until the
    function runs. Only ``if TYPE_CHECKING:`` blocks (never run) are left out.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()

    def add(name: str) -> None:
        # ``from livebg.x import y``: y may be a module or a name in x
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != mod:
            out.add(name)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(mod, path, node)
            for a in node.names:
                add(f"{target}.{a.name}" if f"{target}.{a.name}" in known else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_cycles() -> list[list[str]]:
    """Every cycle among module-level imports (one per strongly connected component)."""
    mods = modules()
    known = set(mods)
    graph = {m: module_imports(m, p, known) for m, p in mods.items()}
    # A package's __init__ runs before its submodules: importing livebg.a.b imports livebg.a.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan, recursive (the graph is small)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return cycles


def is_numba_kernel(fn: ast.FunctionDef) -> bool:
    for d in fn.decorator_list:
        text = ast.unparse(d)
        if "njit" in text or "jit(" in text or text.endswith("jit") or "vectorize" in text:
            return True
    return False


def long_functions(limit: int = MAX_LINES) -> list[tuple[int, str]]:
    """(lines, "module:function") for every function longer than ``limit``, numba kernels aside."""
    found = []
    for mod, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                n = node.end_lineno - first + 1
                if n > limit and not is_numba_kernel(node):
                    found.append((n, f"{mod}:{node.name}"))
    return sorted(found, reverse=True)


def test_no_import_cycles():
    assert import_cycles() == []


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    """The checker itself can fail: two modules importing each other are caught."""
    pkg = tmp_path / "livebg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from livebg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from livebg.sub.a import thing\n")
    (pkg / "c.py").write_text("def f():\n    from livebg import d\n")  # local: an edge too
    (pkg / "d.py").write_text("import livebg.c\n")
    (pkg / "e.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from livebg import f\n")  # never run: no edge
    (pkg / "f.py").write_text("import livebg.e\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    assert import_cycles() == [["livebg.c", "livebg.d"], ["livebg.sub.a", "livebg.sub.b"]]


def test_no_function_over_80_lines():
    assert long_functions() == []


def test_top_level_modules_are_the_few_that_belong_to_the_whole_package():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= TOP_LEVEL, sorted(top - TOP_LEVEL)
