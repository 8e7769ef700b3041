"""Score a PyTorch model folder for ``profile`` in a child process (``profile`` itself never imports
torch, so that it runs on devices with only onnxruntime); the same dev split, subset and length as
the ONNX targets, so that a teacher folder and its exported student are compared on equal terms."""

from __future__ import annotations

import json
import sys


def main() -> None:
    spec = json.loads(sys.stdin.read())
    from codir_edge.core.errors import CodirError
    from codir_edge.data import DataSpec
    from codir_edge.models.scoring import score_model_folder

    try:
        report = score_model_folder(
            spec["model"],
            spec["task"],
            DataSpec(**spec["data"]),
            max_length=spec["max_length"],
            max_samples=spec["max_samples"],
            device="cpu",
            seed=0,  # the subset profile scores ONNX targets on
        )
    except CodirError as exc:
        print(json.dumps({"error": str(exc)}))
        return
    print(json.dumps({"metrics": report.metrics}))


if __name__ == "__main__":
    main()
