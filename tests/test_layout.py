"""The tree shows the design: floors import downward only, no circles, small modules."""

from __future__ import annotations

import ast

from tests.import_graph import ROOT, cycles, floor_of, forbidden_edges, graph, module_files

MAX_MODULE_LINES = 450
#: Third-party packages `core` must not import: it is pure NumPy math.
NOT_IN_CORE = ("rasterio", "rio_tiler", "titiler", "fastapi", "starlette", "pyproj", "osgeo", "httpx")


def test_package_has_no_import_circles():
    assert cycles(graph()) == []


def test_imports_run_downward_between_floors():
    assert forbidden_edges(graph()) == []


def test_import_graph_sees_imports_inside_functions_and_type_checking(tmp_path):
    """The check itself: an import hidden in a function or under TYPE_CHECKING is an edge."""
    edges = graph()
    assert "titiler_otsu.web.mixin" in edges["titiler_otsu.web.areas"]  # under TYPE_CHECKING
    assert floor_of("titiler_otsu.core.grid") == "core" and floor_of("titiler_otsu.app") == "top"
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert forbidden_edges({"titiler_otsu.core.grid": {"titiler_otsu.io.reader"}}) == [
        ("titiler_otsu.core.grid", "titiler_otsu.io.reader")
    ]


def test_core_is_pure_numpy():
    for name, path in module_files().items():
        if floor_of(name) != "core":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            for module in modules:
                assert module.split(".")[0] not in NOT_IN_CORE, f"{name} imports {module}"


def _third_party_imports(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_io_reads_without_the_web_framework():
    """`io` is usable from the export workers and notebooks: no FastAPI/Starlette, no TiTiler factories."""
    web = ("fastapi", "starlette", "titiler.core.factory", "titiler.core.dependencies")
    for name, path in module_files().items():
        if floor_of(name) == "io":
            bad = {m for m in _third_party_imports(path) if m.startswith(web)}
            assert not bad, f"{name} imports {bad}"


def test_no_module_is_longer_than_450_lines():
    long = {
        name: n for name, path in module_files().items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_every_module_says_what_it_holds_and_what_it_may_import():
    missing = []
    for name, path in module_files().items():
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if not doc or "May import:" not in doc:
            missing.append(name)
    assert missing == []


def test_subpackages_are_listed_for_packaging():
    """setuptools lists packages explicitly: a subpackage left out would be missing from the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, path in module_files().items() if path.name == "__init__.py"}
    assert packages <= listed
