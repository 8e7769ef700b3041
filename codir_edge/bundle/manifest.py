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

from codir_edge.core.errors import CheckFailedError, InputError

MANIFEST = "manifest.json"
FORMAT = "codir-edge-bundle"


@dataclass(frozen=True)
class Variant:
    name: str
    file: str
    accuracy: dict[str, float] = field(default_factory=dict)
    takes: str = "token_ids"  # or "text": a tokenizer-in-graph model, fed strings
    threads: tuple[int, ...] = ()  # the thread counts export tuned it for (empty: not tuned)
    alternate_of: str | None = None  # another thread count's pick for the variant of this name
    fixed_shape: tuple[int, int] | None = None  # (batch, length) of a graph with static input shapes


TAKES = ("token_ids", "text")


@dataclass(frozen=True)
class Manifest:
    root: Path
    variants: list[Variant]
    files: list[dict]
    raw: dict

    def path_of(self, variant: Variant) -> Path:
        return self.root / variant.file

    def for_threads(self, variant: Variant, threads: int) -> Variant:
        """The file to load for ``variant`` at ``threads`` intra-op threads: the deployment table's
        entry for the largest tuned count not above it (the smallest when all are above)."""
        table = (self.raw.get("deployment") or {}).get("threads") or {}
        if variant.name not in _KINDS or not table:
            return variant
        counts = sorted(int(t) for t in table)
        chosen = max((t for t in counts if t <= threads), default=counts[0])
        name = table[str(chosen)].get(variant.name, variant.name)
        return next((v for v in self.variants if v.name == name), variant)


_KINDS = ("fp32", "int8")  # the variants a deployment table names per thread count


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


def exported_max_length(root: Path) -> int | None:
    """The ``--max-length`` the bundle at ``root`` was exported at, which its tokenizer_config.json tells
    apps to truncate at (so evaluate and profile score there); None without a manifest that says."""
    if not (root / MANIFEST).is_file():
        return None
    config = read_manifest(root).raw.get("config")
    length = config.get("max_length") if isinstance(config, dict) else None
    return length if isinstance(length, int) and not isinstance(length, bool) and length > 0 else None


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
        variants.append(
            Variant(
                entry["name"],
                _inside(root, entry.get("file"), where),
                dict(accuracy),
                takes,
                _counts(entry.get("threads", []), f"{where} threads", 1),
                _optional_name(entry.get("alternate_of"), where),
                _fixed_shape(entry.get("fixed_shape"), where),
            )
        )
    _check_deployment(raw.get("deployment"), {v.name for v in variants}, path)
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise InputError(f"{path} files[{i}]: expected an object with path, sha256 and size")
        _inside(root, entry.get("path"), f"{path} files[{i}]")
    return Manifest(root, variants, files, raw)


def _counts(value: object, where: str, length: int | None = None) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        raise InputError(f"{where}: expected a list of positive integers, found {value!r}: re-export the bundle")
    return tuple(value)


def _optional_name(value: object, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InputError(f"{where}: alternate_of must name a variant, found {value!r}: re-export the bundle")
    return value


def _fixed_shape(value: object, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    shape = _counts(value, f"{where} fixed_shape")
    if len(shape) != 2:
        raise InputError(f"{where} fixed_shape: expected [batch, length], found {value!r}: re-export the bundle")
    return shape[0], shape[1]


def _check_deployment(deployment: object, names: set[str], path: Path) -> None:
    """The table is read by apps: every thread count a positive integer, every name a variant."""
    if deployment is None:
        return
    table = deployment.get("threads") if isinstance(deployment, dict) else None
    if not isinstance(table, dict):
        raise InputError(f"{path} deployment: expected a 'threads' table of thread counts: re-export the bundle")
    for count, picks in table.items():
        if not count.isdigit() or int(count) < 1 or not isinstance(picks, dict):
            raise InputError(f"{path} deployment threads '{count}': not a thread count: re-export the bundle")
        missing = sorted(str(n) for n in picks.values() if n not in names)
        if missing:
            raise InputError(f"{path} deployment threads {count} names variant {missing[0]}, which the bundle lacks: "
                             "re-export the bundle")  # fmt: skip


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
