"""Registry coverage for --task embedding: every encoder family, as a sentence-transformers model of
its own tokenizer kind, is distilled, exported with its pooling in the graph, loaded by
sentence-transformers' ONNX backend as exported and evaluated. A family in ``FAMILIES`` missing from
``TESTED`` fails ``test_every_registered_family_is_tested_as_an_embedding_model``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import invoke
from families import build_config, build_tokenizer

from codir_edge.models.families import FAMILIES
from codir_edge.models.sentence import POOLINGS, SentenceHead, write_sentence_head

TESTED = ("bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "albert", "mpnet", "deberta-v2",
          "modernbert")  # fmt: skip
# each family with another head, so that every pooling and both normalisations go through the chain
HEADS = {family: SentenceHead(POOLINGS[i % 3], i % 2 == 0) for i, family in enumerate(TESTED)}

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def test_every_registered_family_is_tested_as_an_embedding_model():
    assert set(TESTED) == set(FAMILIES), f"families without an embedding test: {set(FAMILIES) - set(TESTED)}"


def family_embedder(family: str, folder: Path, glue_dir: Path) -> Path:
    """A random bare ``family`` encoder with its own kind of tokenizer, saved as a sentence-transformers folder."""
    import torch
    from transformers import AutoModel

    lines = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:3001]
    tokenizer = build_tokenizer(family, [line.split("\t")[0] for line in lines])
    torch.manual_seed(0)
    config = build_config(family, tokenizer, 2)
    config.initializer_range = 0.2  # blocks that move the embedding (see test_embedding.st_teacher)
    AutoModel.from_config(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    write_sentence_head(folder, HEADS[family], 32, 128)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("family", TESTED)
def test_family_goes_through_the_embedding_chain(tmp_path, glue_dir, family):
    from sentence_transformers import SentenceTransformer

    teacher = family_embedder(family, tmp_path / "teacher", glue_dir)
    rows = [line.split("\t") for line in (glue_dir / "STS-B" / "dev.tsv").read_text().splitlines()[:41]]
    (tmp_path / "STS-B").mkdir()
    (tmp_path / "STS-B" / "dev.tsv").write_text("\n".join("\t".join(r) for r in rows) + "\n")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(line.split("\t")[0] for line in
                                (glue_dir / "SST-2" / "train.tsv").read_text().splitlines()[1:121]) + "\n")  # fmt: skip
    student = tmp_path / "student"
    result = invoke("compress", "--task", "embedding", "--teacher", teacher, "--data", corpus, "--out", student,
                    "--student-layers", "2", "--max-length", "32", "--batch-size", "8", "--epochs", "1",
                    "--negatives", "4", "--held-out", "12", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((student / "metrics.json").read_text())["embedding"] == {
        "pooling": HEADS[family].pooling, "normalize": HEADS[family].normalize}  # fmt: skip

    bundle = tmp_path / "bundle"
    result = invoke("export", student, "--task", "embedding", "--data", tmp_path / "STS-B", "--out", bundle,
                    "--max-length", "64", "--max-accuracy-drop", "100", "--tune-threads", "1", "--tune-lengths", "16",
                    "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["parity"]["max_abs_diff"] <= 1e-4 and manifest["parity"]["min_cosine"] >= 0.99999
    assert invoke("verify", bundle).exit_code == 0

    texts = [r[7] for r in rows[1:]]
    torch_side = SentenceTransformer(str(student), device="cpu").encode(texts)
    onnx_side = SentenceTransformer(str(bundle), backend="onnx", model_kwargs={"file_name": "onnx/model.onnx"},
                                    device="cpu").encode(texts, batch_size=1)  # fmt: skip
    cosine = (torch_side * onnx_side).sum(1) / np.linalg.norm(torch_side, axis=1) / np.linalg.norm(onnx_side, axis=1)
    assert cosine.min() >= 0.9999, family

    result = invoke("evaluate", bundle, "--task", "embedding", "--data", tmp_path / "STS-B", "--json",
                    tmp_path / "e.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {v["variant"] for v in json.loads((tmp_path / "e.json").read_text())["variants"]} == {"fp32", "int8"}
