"""The package's floors, read from the source: each layer imports only the floors below it.

The declared order is ``core < onnx, data, models, bundle < devices, training < stages < pipeline
< cli``. Stage packages (finetune, compress, export, profile, evaluate) share a floor but never
import one another: they meet through files on disk. Imports inside functions count (a lazy import
is still a dependency), and so do modules named in strings (``importlib.import_module``, a worker
run with ``python -m``), because moving an import into a string does not remove the dependency. No
two packages import each other, even through a third, and the on-device runner imports nothing of
the package: it is copied alone onto boards that have only the Python standard library.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "codir_edge"
STAGES = ("finetune", "compress", "export", "profile", "evaluate")
FLOORS: dict[str, int] = {
    "core": 0,
    **dict.fromkeys(("onnx", "data", "models", "bundle"), 1),
    **dict.fromkeys(("devices", "training"), 2),
    **dict.fromkeys(STAGES, 3),
    "pipeline": 4,
    "cli": 5,
}
LEAVES = ("codir_edge.core.runner", "codir_edge.core.probe")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _named_in_strings(tree: ast.AST) -> set[str]:
    """Modules named by string constants: ``import_module("codir_edge.x")``, ``-m codir_edge.x``."""
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("codir_edge.")
    }


def imported(path: Path, module: str) -> set[str]:
    """Every codir_edge module ``path`` imports, at any depth of the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = _named_in_strings(tree)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in names if name in MODULES}


def package_of(module: str) -> str:
    """The top-level package a module lives in; the root module and ``__main__`` count as core and cli."""
    if module == "codir_edge.__main__":  # ``python -m codir_edge`` is the command line
        return "cli"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in FLOORS) else "core"


IMPORTS = {module: imported(path, module) for module, path in MODULES.items()}


def test_every_package_has_a_declared_floor():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(FLOORS), f"declare a floor for {sorted(packages - set(FLOORS))}"
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, f"{loose} sit at the package root: give each a floor's package"


def test_the_scan_sees_real_and_string_imports():
    assert "codir_edge.training.engine" in IMPORTS["codir_edge.compress.run"]
    assert "codir_edge.profile.torch_worker" in IMPORTS["codir_edge.profile.prepare"]
    assert package_of("codir_edge") == "core" and package_of("codir_edge.cli.app") == "cli"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_floor_and_below(module):
    own = package_of(module)
    wrong = sorted(
        target
        for target in IMPORTS[module]
        if FLOORS[package_of(target)] > FLOORS[own]
        or (own in STAGES and package_of(target) in STAGES and package_of(target) != own)
    )
    assert not wrong, f"{module} (floor {FLOORS[own]}, {own}) imports {wrong}: move what they share down a floor"


def test_only_main_imports_the_command_line():
    importers = sorted(
        m for m, targets in IMPORTS.items() if package_of(m) != "cli" and any(package_of(t) == "cli" for t in targets)
    )
    assert not importers, f"{importers} import codir_edge.cli"


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [])):
            return cycle
    return None


def test_no_two_packages_import_each_other():
    graph: dict[str, set[str]] = {}
    for module, targets in IMPORTS.items():
        own = package_of(module)
        graph.setdefault(own, set()).update(package_of(t) for t in targets if package_of(t) != own)
    cycle = _find_cycle(graph)
    assert cycle is None, f"package import loop: {' -> '.join(cycle or [])}"


def test_the_loop_check_can_fail():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_data_layer_has_no_module_import_cycle():
    data = {m for m in MODULES if m.startswith("codir_edge.data.")}
    cycle = _find_cycle({m: {t for t in IMPORTS[m] if t in data and t != m} for m in data})
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


@pytest.mark.parametrize("leaf", LEAVES)
def test_the_on_device_runner_imports_nothing_of_the_package(leaf):
    assert not IMPORTS[leaf] - {leaf}, f"{leaf} imports {sorted(IMPORTS[leaf])}: it runs alone on a board"
