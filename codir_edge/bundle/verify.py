"""``verify``: is this bundle exactly what export wrote, and does every model in it load?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.bundle.manifest import MANIFEST, read_manifest, verify_files
from codir_edge.errors import CheckFailedError, InputError

MODEL_SUFFIXES = (".onnx", ".ort")


@dataclass(frozen=True)
class Verified:
    files: int
    models: int


def verify_bundle(root: Path) -> Verified:
    """All problems are collected, then reported at once (exit 1); a malformed manifest is exit 2."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder: pass a bundle folder written by codir-edge export")
    manifest = read_manifest(root)
    problems = verify_files(manifest)
    listed = {entry["path"] for entry in manifest.files}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative != MANIFEST and relative not in listed:
            problems.append(f"{relative}: not in the manifest")
    for variant in manifest.variants:
        if variant.file not in listed:
            problems.append(f"{variant.file}: variant '{variant.name}' has no hash in the manifest")
    from codir_edge.onnx_session import create_session

    takes_text = {v.file for v in manifest.variants if v.takes == "text"}
    models = 0
    for entry in manifest.files:
        path = root / entry["path"]
        if path.suffix in MODEL_SUFFIXES and path.is_file():
            try:
                create_session(path, 1, custom_ops=entry["path"] in takes_text)
                models += 1
            except Exception as exc:  # onnxruntime raises its own (pybind) types
                problems.append(f"{entry['path']}: does not load ({str(exc).strip().splitlines()[0][:160]})")
    if problems:
        raise CheckFailedError(f"{root}: {len(problems)} problem(s): " + "; ".join(problems))
    return Verified(files=len(manifest.files), models=models)
