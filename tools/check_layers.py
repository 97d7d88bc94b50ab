"""The layering rules, checked from the source (every import counts: deferred, type-only, relative).

- no import cycle among our modules;
- ``backtester.core`` (the kernel) imports nothing of ours outside itself;
- ``strategies`` imports nothing of ``backtester`` outside the kernel.

Sizes (modules over 500 lines, functions over 60) are listed; ``--sizes`` makes them fail too.

    python tools/check_layers.py [--sizes]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backtester.store import module_imports  # noqa: E402

PACKAGES = ("backtester", "strategies")
MAX_MODULE, MAX_FUNCTION = 500, 60


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports(name: str, file: Path, known: dict[str, Path]) -> set[str]:
    """Our modules that ``file`` imports anywhere (the store key's reader: :func:`backtester.store.module_imports`)."""
    return module_imports(name, file) & known.keys()


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer_breaks(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for m, deps in sorted(graph.items()):
        for d in sorted(deps):
            if m.startswith("backtester.core") and not d.startswith("backtester.core"):
                out.append(f"the kernel's {m} imports {d}")
            if m.startswith("strategies") and d.startswith("backtester") and not d.startswith("backtester.core"):
                out.append(f"{m} imports {d} (strategies may import only backtester.core)")
    return out


def sizes(mods: dict[str, Path]) -> list[str]:
    out = []
    for f in mods.values():
        text = f.read_text()
        rel = f.relative_to(ROOT)
        if (n := len(text.splitlines())) > MAX_MODULE:
            out.append(f"{rel}: {n} lines (over {MAX_MODULE})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION:
                    out.append(f"{rel}:{node.lineno}: {node.name} is {n} lines (over {MAX_FUNCTION})")
    return out


def main(argv: list[str]) -> int:
    mods = modules()
    graph = {m: imports(m, f, mods) for m, f in mods.items()}
    problems = [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)] + layer_breaks(graph)
    big = sizes(mods)
    for line in problems + big:
        print(line)
    print(
        f"{len(mods)} modules, {sum(len(f.read_text().splitlines()) for f in mods.values())} lines; "
        f"{len(problems)} layering problems, {len(big)} size notes"
    )
    return 1 if problems or ("--sizes" in argv and big) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
