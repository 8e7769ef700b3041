"""The package's layering, read from the source: stages meet only through files on disk.

Stage packages (finetune, compress, export, profile, evaluate) never import one another; the shared
layers below them (training, data, models, bundle and the ground-floor modules) import no stage,
and only ``cli`` and ``pipeline`` see every stage. Imports inside functions count too: a lazy
import is still a dependency. The data layer has no import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "codir_edge"
STAGES = ("finetune", "compress", "export", "profile", "evaluate")
ABOVE_STAGES = ("cli", "pipeline")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def imported(path: Path, module: str) -> set[str]:
    """Every codir_edge module ``path`` imports, at any depth of the file (relative imports resolved)."""
    names = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "codir_edge.__main__":  # ``python -m codir_edge`` is the command line
        return "cli"
    return parts[1] if len(parts) > 1 and parts[1] in (*STAGES, *ABOVE_STAGES) else "shared"


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_the_scan_sees_every_stage_and_real_imports():
    assert {stage_of(m) for m in MODULES} >= set(STAGES)
    assert "codir_edge.training.engine" in imported(MODULES["codir_edge.compress.run"], "codir_edge.compress.run")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_reaches_into_a_stage_it_does_not_belong_to(module):
    own = layer(module)
    if own in ABOVE_STAGES:
        return
    wrong = sorted(
        target
        for target in imported(MODULES[module], module)
        if layer(target) in ABOVE_STAGES or (stage_of(target) and stage_of(target) != stage_of(module))
    )
    where = f"stage {own}" if own != "shared" else "a shared layer"
    assert not wrong, f"{module} ({where}) imports {wrong}: move what they share down a layer"


def test_the_data_layer_has_no_import_cycle():
    data = {m for m in MODULES if m.startswith("codir_edge.data.")}
    graph = {m: {t for t in imported(MODULES[m], m) if t in data and t != m} for m in data}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in sorted(data):
        if module not in state:
            visit(module, [])
