"""The mobile form: an ``.ort`` file for ONNX Runtime Mobile and the list of operators a slim
(``--include_ops_by_config``) build must contain to run it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.core.errors import CheckFailedError


def to_ort(source: Path, bundle: Path, target: str, name: str = layout.ORT, ops_config: str = layout.OPS_CONFIG,
           style: str = "Fixed") -> tuple[Path, Path]:  # fmt: skip
    """Convert ``source`` to ``bundle/<name>`` and write ``bundle/<ops_config>`` (both paths inside
    the bundle, so the converter's header, which names its input files, names the shipped file
    instead of the staging folder on the build machine). ``Fixed`` applies
    every CPU optimisation for the target platform now; ``Runtime`` leaves the nodes an NNAPI or Core
    ML execution provider would take unfused, as onnxruntime advises for those. Runs onnxruntime's
    converter in a child process, as its command line is the interface onnxruntime documents and
    keeps stable."""
    with tempfile.TemporaryDirectory(dir=bundle) as tmp:
        staged = Path(tmp) / "model.onnx"
        shutil.copy(source, staged)
        command = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(staged),
                   "--output_dir", str(Path(tmp) / "out"), "--optimization_style", style,
                   "--target_platform", "arm" if target == "arm64" else "amd64"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        produced = list((Path(tmp) / "out").glob("*.ort"))
        configs = list((Path(tmp) / "out").glob("*.config"))
        if done.returncode != 0 or not produced or not configs:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CheckFailedError(f"onnxruntime could not convert {source.name} to .ort ({last[0]}): pass --no-ort")
        shutil.move(str(produced[0]), bundle / name)
        _write_ops_config(configs[0], bundle / ops_config, Path(name).name)
    return bundle / name, bundle / ops_config


def _write_ops_config(produced: Path, out: Path, shipped: str) -> None:
    """The operator list as written, its '# - <path>' header lines (absolute paths in a temporary
    folder of this machine) replaced by the one file it describes."""
    lines = produced.read_text(encoding="utf-8").splitlines()
    header = [line for line in lines if line.startswith("#") and not line.startswith("# - ")]
    body = [line for line in lines if not line.startswith("#")]
    out.write_text("\n".join([*header, f"# - {shipped}", *body]) + "\n", encoding="utf-8")
