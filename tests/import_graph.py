"""The package's import graph, read from the source with `ast` (nothing is imported).

Every `import titiler_otsu...` / `from titiler_otsu... import ...` counts, wherever it is:
module level, inside functions, under `TYPE_CHECKING`. `python -m tests.import_graph` prints
the graph between floors (subpackages and top-level modules) and any circle or forbidden edge.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = "titiler_otsu"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: What each floor may import of ours (besides itself). Top-level glue may import anything.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "settings": set(),
    "version": set(),
    "core": set(),
    "security": {"errors", "settings"},
    "io": {"core", "security", "errors", "settings"},
    "algorithms": {"core", "errors", "settings"},
    "web": {"core", "security", "io", "algorithms", "errors", "settings"},
    "export": {"core", "security", "io", "algorithms", "errors", "settings"},
}
TOP_LEVEL = "top"


def module_files() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    files = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def floor_of(module: str) -> str:
    """The floor a module lives on: its subpackage, `errors`/`settings`, or top-level glue."""
    parts = module.split(".")
    if len(parts) == 1:
        return TOP_LEVEL
    if parts[1] in ALLOWED:
        return parts[1]
    return TOP_LEVEL


def _target(name: str, modules: dict[str, Path]) -> str:
    """The module an imported dotted name refers to (a name inside a module → that module)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules `module` imports, anywhere in its source."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the importing package
                base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = _target(name, modules)
                if target != module:
                    found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    """Module → the package modules it imports."""
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), i.e. import circles.

    A package's `__init__` is not counted as importing its own submodules' parents.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def forbidden_edges(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports that run upward or sideways: (importer, imported) pairs the floors forbid."""
    bad = []
    for source, targets in sorted(edges.items()):
        floor = floor_of(source)
        if floor == TOP_LEVEL:
            continue
        for target in sorted(targets):
            other = floor_of(target)
            if other != floor and other != "version" and other not in ALLOWED[floor]:
                bad.append((source, target))
    return bad


def floor_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Floor → the floors it imports."""
    floors: dict[str, set[str]] = defaultdict(set)
    for source, targets in edges.items():
        for target in targets:
            if floor_of(source) != floor_of(target):
                floors[floor_of(source)].add(floor_of(target))
    return floors


def main() -> int:
    """Print the floor graph, circles and forbidden edges; exit 1 if any."""
    edges = graph()
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports between them")
    for floor, targets in sorted(floor_graph(edges).items()):
        print(f"  {floor:10} -> {', '.join(sorted(targets))}")
    circles, bad = cycles(edges), forbidden_edges(edges)
    for circle in circles:
        print("circle:", " <-> ".join(circle))
    for source, target in bad:
        print(f"forbidden: {source} -> {target}")
    print("no circles, no forbidden imports" if not (circles or bad) else "layout broken")
    return 1 if circles or bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
