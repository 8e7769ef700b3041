"""Resolve the TARGET arguments of ``profile`` into the models to measure.

A target is an ONNX file, a bundle folder (each variant of its manifest), or a Hugging Face model
folder, measured with PyTorch as the baseline when torch is installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.bundle.manifest import MANIFEST, read_manifest
from codir_edge.core.errors import InputError
from codir_edge.models.checkpoint import read_model_json
from codir_edge.models.families import max_positions
from codir_edge.onnx.session import check_onnx_file


@dataclass(frozen=True)
class Target:
    """One model to measure. ``name`` is what budgets refer to: the file name, or the bundle variant."""

    name: str
    path: Path
    kind: str  # "onnx" or "torch"
    folder: Path  # where tokenizer.json / config.json live
    accuracy: dict[str, float] = field(default_factory=dict)  # from the bundle manifest, if any
    deployment: dict[int, Path] = field(default_factory=dict)  # tuned thread count -> the file export chose
    fixed_shape: tuple[int, int] | None = None  # (batch, length) of a static-shape graph

    def file_for(self, threads: int) -> Path:
        """The bundle's pick for ``threads``: the largest tuned count not above it, else the smallest."""
        if not self.deployment:
            return self.path
        counts = sorted(self.deployment)
        return self.deployment[max((t for t in counts if t <= threads), default=counts[0])]

    def fits(self, batch_size: int, seq_len: int | str) -> bool:
        """A fixed-shape graph runs only its own batch size and lengths up to its own (padded to it)."""
        if self.fixed_shape is None:
            return True
        return batch_size == self.fixed_shape[0] and (not isinstance(seq_len, int) or seq_len <= self.fixed_shape[1])

    @property
    def size_mb(self) -> float:
        if self.kind == "torch":
            weights = list(self.folder.glob("*.safetensors")) or list(self.folder.glob("pytorch_model*.bin"))
            return sum(p.stat().st_size for p in weights) / 1e6
        return (self.path.stat().st_size + sum(p.stat().st_size for p in external_data(self.path))) / 1e6


def external_data(path: Path) -> list[Path]:
    return [p for p in path.parent.glob(path.name + ".data") if p.is_file()]


def resolve_targets(paths: list[Path]) -> list[Target]:
    targets: list[Target] = []
    for path in map(Path, paths):
        if path.is_dir() and (path / MANIFEST).is_file():
            manifest = read_manifest(path)
            for variant in manifest.variants:
                if variant.takes == "text" or variant.alternate_of:  # measured by its token-id twin, or
                    continue  # as the file its variant loads at the thread counts it was picked for
                file = manifest.path_of(variant)
                check_onnx_file(file)
                table = (manifest.raw.get("deployment") or {}).get("threads") or {}
                picks = {int(t): manifest.path_of(manifest.for_threads(variant, int(t))) for t in table}
                for pick in set(picks.values()) - {file}:
                    check_onnx_file(pick)
                targets.append(Target(variant.name, file, "onnx", path, variant.accuracy, picks, variant.fixed_shape))
        elif path.is_dir() and (path / "config.json").is_file():
            if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
                raise InputError(
                    f"{path} is a PyTorch model folder; measuring it needs torch and transformers: "
                    "pip install 'codir-edge[train]', or profile its ONNX export instead"
                )
            targets.append(Target(f"{path.name} (pytorch)", path, "torch", path))
        elif path.is_dir():
            raise InputError(f"{path} has neither manifest.json nor config.json: pass an ONNX file or a bundle")
        else:
            if path.exists() and path.suffix.lower() not in (".onnx", ".ort"):  # a missing one: check_onnx_file
                raise InputError(f"target {path} is not an .onnx file: pass an ONNX file or a bundle folder")
            check_onnx_file(path)
            targets.append(Target(path.name, path, "onnx", layout.folder_of(path)))
    return named_apart(targets)


def named_apart(targets: list[Target]) -> list[Target]:
    """Targets that share a name (two bundles' ``fp32``, two ``model.onnx`` files) are named by the
    folder they came from as well (``student-a/fp32``), in every report and in budgets, so that two
    students compare side by side without renaming their files; a name that is unique stays short."""
    seen: set[tuple[str, Path]] = set()
    for target in targets:
        if (target.name, target.path.resolve()) in seen:
            raise InputError(f"{target.path} is given twice ({target.name}): pass each target once")
        seen.add((target.name, target.path.resolve()))
    names = [t.name for t in targets]
    shared = {n for n in names if names.count(n) > 1}
    targets = [replace(t, name=f"{_origin(t).name}/{t.name}") if t.name in shared else t for t in targets]
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(
            f"two targets are both named {duplicates[0]}: give one of their folders another name "
            "so that reports and budgets can tell them apart"
        )
    return targets


def _origin(target: Target) -> Path:
    """The folder a target is named by when its own name is shared: the bundle, or the folder an ONNX
    file sits in (a model folder's target already carries the folder's name: its parent is added)."""
    return target.folder.parent if target.kind == "torch" else target.folder


def position_limit(target: Target) -> int | None:
    """The model's longest input, from config.json beside it (None when unknown)."""
    data = read_model_json(target.folder)
    if not isinstance(data.get("max_position_embeddings"), int):
        return None
    return max_positions(data)


def vocab_limit(target: Target) -> int:
    """How many token ids the model knows: config.json's ``vocab_size`` beside it, else the graph's
    embedding table, so synthetic inputs never index past the table."""
    from codir_edge.core.inputs import onnx_vocab_size

    size = read_model_json(target.folder).get("vocab_size")
    if isinstance(size, int) and size > 0:
        return size
    return onnx_vocab_size(target.path)
