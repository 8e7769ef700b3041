"""``verify``: is this bundle exactly what export wrote, and does every model in it load?"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.bundle.manifest import MANIFEST, Manifest, read_manifest, verify_files
from codir_edge.core.errors import CheckFailedError, InputError

MODEL_SUFFIXES = (".onnx", ".ort")


@dataclass(frozen=True)
class Verified:
    files: int
    models: int


def verify_bundle(path: Path) -> Verified:
    """A bundle folder, or one model file checked against the manifest of the bundle that holds it.
    All problems are collected, then reported at once (exit 1); a malformed manifest is exit 2."""
    path = Path(path)
    if path.is_file():
        return _verify_model_file(path)
    root = path
    if not root.is_dir():
        raise InputError(f"{root} does not exist: pass a bundle folder written by codir-edge export, or a model in one")
    if not (root / MANIFEST).is_file():
        if (root / "config.json").is_file():
            raise InputError(
                f"{root} is a model folder, not a bundle: export it first "
                f"(codir-edge export {root} --out BUNDLE), then verify BUNDLE"
            )
        raise InputError(
            f"{root} has no {MANIFEST}: pass a bundle folder written by codir-edge export, or a model file in one"
        )
    manifest = read_manifest(root)
    problems = verify_files(manifest)
    listed = {entry["path"] for entry in manifest.files}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = file.relative_to(root).as_posix()
        if relative != MANIFEST and relative not in listed:
            problems.append(f"{relative}: not in the manifest")
    for variant in manifest.variants:
        if variant.file not in listed:
            problems.append(f"{variant.file}: variant '{variant.name}' has no hash in the manifest")
    models = _load_models(manifest, problems)
    problems += _fixed_shape_problems(manifest)
    _fail_on(problems, root)
    return Verified(files=len(manifest.files), models=models)


def _verify_model_file(path: Path) -> Verified:
    """One .onnx or .ort file (with its external data, if any) against its bundle's manifest: what
    to run before shipping the one file an app embeds."""
    if path.suffix not in MODEL_SUFFIXES:
        raise InputError(f"{path} is not an .onnx or .ort file: pass a model from a bundle, or the bundle folder")
    root = layout.folder_of(path)
    if not (root / MANIFEST).is_file():
        raise InputError(
            f"{path} is not in a bundle (no {MANIFEST} beside it), so there is nothing to check it against: "
            "pass the bundle folder it came from, or re-export to get one"
        )
    manifest = read_manifest(root)
    name = path.absolute().relative_to(root).as_posix()  # onnx/model.onnx in a format-3 bundle
    own = [e for e in manifest.files if e["path"] == name or e["path"].startswith((f"{name}.", f"{name}_"))]
    if not any(entry["path"] == name for entry in own):
        raise CheckFailedError(f"{path}: not listed in {root / MANIFEST}: it is not a file this bundle shipped")
    single = replace(manifest, files=own)
    problems = verify_files(single)
    models = _load_models(single, problems)
    _fail_on(problems, path)
    return Verified(files=len(own), models=models)


def _fixed_shape_problems(manifest: Manifest) -> list[str]:
    """A variant the manifest calls fixed-shape must take exactly that shape: an app sizes its input
    buffers from the manifest."""
    from codir_edge.onnx.session import create_session

    problems = []
    for variant in manifest.variants:
        path = manifest.path_of(variant)
        if variant.fixed_shape is None or not path.is_file():
            continue
        try:
            shapes = {i.name: i.shape for i in create_session(path, 1).get_inputs()}
        except Exception:  # reported by _load_models already
            continue
        wrong = {n: s for n, s in shapes.items() if list(s) != list(variant.fixed_shape)}
        if wrong:
            name, shape = next(iter(wrong.items()))
            expected = list(variant.fixed_shape)
            problems.append(f"{variant.file}: input {name} has shape {shape}, the manifest says {expected}")
    return problems


def _fail_on(problems: list[str], where: Path) -> None:
    """Every problem in one exit-1 error, or nothing."""
    if problems:
        raise CheckFailedError(f"{where}: {len(problems)} problem(s): " + "; ".join(problems))


def _load_models(manifest: Manifest, problems: list[str]) -> int:
    """How many of the manifest's models open in onnxruntime; each one that does not is a problem."""
    from codir_edge.onnx.session import create_session

    takes_text = {v.file for v in manifest.variants if v.takes == "text"}
    models = 0
    for entry in manifest.files:
        path = manifest.root / entry["path"]
        if path.suffix in MODEL_SUFFIXES and path.is_file():
            try:
                create_session(path, 1, custom_ops=entry["path"] in takes_text)
                models += 1
            except Exception as exc:  # onnxruntime raises its own (pybind) types
                problems.append(f"{entry['path']}: does not load ({str(exc).strip().splitlines()[0][:160]})")
    return models
