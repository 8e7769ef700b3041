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
        from codir_edge.data.embedding import is_embedding

        if is_embedding(spec["task"]):
            print(json.dumps({"metrics": _embedding_scores(spec)}))
            return
        from codir_edge.data.ner import is_ner

        if is_ner(spec["task"]):
            print(json.dumps({"metrics": _ner_scores(spec)}))
            return
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


def _embedding_scores(spec: dict) -> dict[str, float]:
    """A sentence-embedding folder's scores on the data, as evaluate --task embedding gives them."""
    from codir_edge.data import DataSpec
    from codir_edge.data.embedding import read_embedding_data
    from codir_edge.models.embed import embed_folder

    wanted = read_embedding_data(DataSpec(**spec["data"]), "dev", spec["max_samples"], 0)
    embeddings, _ = embed_folder(spec["model"], wanted.texts, spec["max_length"], 128, "cpu")
    return wanted.score(embeddings)


def _ner_scores(spec: dict) -> dict[str, float]:
    """A token classifier folder's entity scores on the data's dev split, as evaluate --task ner gives them."""
    from pathlib import Path

    from codir_edge.data.ner import read_tagged
    from codir_edge.models.tagger import score_tagger_folder, tagger_folder_labels

    folder = Path(spec["model"])
    config, labels = tagger_folder_labels(folder, "target")
    split = read_tagged(spec["data"]["data"], "dev", labels).subsample(spec["max_samples"], 0)
    return score_tagger_folder(folder, split, labels, config, spec["max_length"], 128, "cpu")[0]


if __name__ == "__main__":
    main()
