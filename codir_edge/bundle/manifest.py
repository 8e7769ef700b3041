"""Read and check a bundle's ``manifest.json`` with json and hashlib only (it is read on devices).

A bundle is a folder with ONNX variants (fp32, int8, ...), tokenizer files and a manifest:

    {"format": "codir-edge-bundle", "format_version": 1,
     "variants": [{"name": "int8", "file": "model.int8.onnx", "accuracy": {"accuracy": 0.91}, ...}],
     "files": [{"path": "model.int8.onnx", "sha256": "...", "size": 123}, ...], ...}

Every path must stay inside the bundle: a manifest is input, and input is not trusted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from codir_edge.errors import CheckFailedError, InputError

MANIFEST = "manifest.json"
FORMAT = "codir-edge-bundle"


@dataclass(frozen=True)
class Variant:
    name: str
    file: str
    accuracy: dict[str, float] = field(default_factory=dict)
    takes: str = "token_ids"  # or "text": a tokenizer-in-graph model, fed strings


TAKES = ("token_ids", "text")


@dataclass(frozen=True)
class Manifest:
    root: Path
    variants: list[Variant]
    files: list[dict]
    raw: dict

    def path_of(self, variant: Variant) -> Path:
        return self.root / variant.file


def _inside(root: Path, relative: object, where: str) -> str:
    if not isinstance(relative, str) or not relative:
        raise InputError(f"{where}: a path must be a non-empty string, found {relative!r}: re-export the bundle")
    pure = PurePosixPath(relative)
    if (
        pure.is_absolute()
        or ".." in pure.parts
        or "\\" in relative
        or (root / relative).resolve().parent != (root / relative).parent.resolve()
    ):
        raise InputError(f"{where}: path '{relative}' leaves the bundle: refusing it (re-export the bundle)")
    return relative


def read_manifest(root: Path) -> Manifest:
    """Parse and validate; any malformed manifest is one :class:`InputError`, never a crash."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise InputError(f"{root} has no {MANIFEST}: pass an ONNX file or a bundle written by codir-edge export")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}): re-export the bundle") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise InputError(f"{path} is not a codir-edge manifest (format must be '{FORMAT}'): re-export the bundle")
    variants_raw = raw.get("variants")
    files = raw.get("files", [])
    if not isinstance(variants_raw, list) or not variants_raw or not isinstance(files, list):
        raise InputError(f"{path} lists no variants: re-export the bundle")
    variants = []
    for i, entry in enumerate(variants_raw):
        where = f"{path} variants[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise InputError(f"{where}: each variant needs a name and a file: re-export the bundle")
        accuracy = entry.get("accuracy") or {}
        if not isinstance(accuracy, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in accuracy.values()
        ):
            raise InputError(f"{where}: accuracy must map metric names to numbers: re-export the bundle")
        takes = entry.get("takes", "token_ids")
        if takes not in TAKES:
            raise InputError(
                f"{where}: 'takes' must be one of {', '.join(TAKES)}, found {takes!r}: re-export the bundle"
            )
        variants.append(Variant(entry["name"], _inside(root, entry.get("file"), where), dict(accuracy), takes))
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise InputError(f"{path} files[{i}]: expected an object with path, sha256 and size")
        _inside(root, entry.get("path"), f"{path} files[{i}]")
    return Manifest(root, variants, files, raw)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(manifest: Manifest) -> list[str]:
    """Every mismatch (missing file, size or hash), all collected before failing once."""
    problems = []
    for entry in manifest.files:
        target = manifest.root / entry["path"]
        if not target.is_file():
            problems.append(f"{entry['path']}: missing")
        elif entry.get("size") is not None and target.stat().st_size != entry["size"]:
            problems.append(f"{entry['path']}: size {target.stat().st_size} != {entry['size']}")
        elif entry.get("sha256") and sha256_of(target) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    return problems


def check_files(manifest: Manifest) -> None:
    problems = verify_files(manifest)
    if problems:
        raise CheckFailedError(
            f"{manifest.root}: {len(problems)} file(s) do not match the manifest: " + "; ".join(problems)
        )
