"""finetune as a recipe on the shared training engine: the same weights as the plain loop it has
always been, exact resume after SIGKILL or Ctrl-C, torchrun, and the divergence message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import (
    assert_one_line_error,
    interrupt_after_first_checkpoint,
    invoke,
    invoke_one_thread,
    max_difference,
)
from cli_helpers import weights_of as saved_weights
from conftest import build_tiny_bert, cut_glue

pytestmark = pytest.mark.slow


def finetune_args(model: Path, data: Path, out: Path, *extra) -> list:
    return ["finetune", "--model", model, "--task", "sst2", "--data", data, "--out", out, "--max-length", "32",
            "--batch-size", "8", "--epochs", "2", "--seed", "7", "--quiet", *extra]  # fmt: skip


@pytest.fixture()
def sst2_200(tmp_path, glue_dir) -> Path:
    return cut_glue(glue_dir, "SST-2", tmp_path / "SST-2-200", 200, 40)


@pytest.fixture()
def backbone(tmp_path, backbone_dir) -> Path:
    return build_tiny_bert(tmp_path / "backbone", backbone_dir, num_labels=None, layers=2, hidden=32, seed=3)


def plain_loop_weights(model_dir: Path, data: Path, epochs: int, seed: int, lr: float = 1e-4) -> dict:
    """finetune's recipe written out as the plain PyTorch loop it was before it moved onto the engine:
    seed, load, AdamW (no decay on biases and LayerNorm), linear warm-up/decay, one generator drawn
    epoch after epoch for the length-grouped order, clipped gradients; the best dev epoch is kept."""
    import torch

    from codir_edge.data import DataSpec, get_task, load_train_dev
    from codir_edge.data.encode import encode, pad_batch, train_batches
    from codir_edge.data.metrics import score
    from codir_edge.models.loading import load_classifier, load_tokenizer
    from codir_edge.models.predict import predict_logits
    from codir_edge.models.runtime import resolve_runtime, seed_everything

    task, runtime = get_task("sst2"), resolve_runtime("cpu", "fp32")
    train, dev, labels = load_train_dev(task, DataSpec(str(data)))
    seed_everything(seed)
    tokenizer = load_tokenizer(model_dir)
    train_enc, dev_enc = encode(tokenizer, train, 32), encode(tokenizer, dev, 32)
    model = load_classifier(model_dir, labels, False)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "LayerNorm" not in n and not n.endswith(".bias")]
    rest = [p for n, p in model.named_parameters() if not any(p is q for q in decay)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                  lr=lr, fused=False)  # fmt: skip
    total = -(-len(train_enc) // 8) * epochs
    warmup = -(-total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    rng, best, kept = np.random.default_rng(seed), -1.0, None
    targets = torch.from_numpy(train_enc.targets)
    for _ in range(epochs):
        model.train()
        for rows in train_batches(train_enc.lengths, 8, rng, True):
            batch = {k: torch.from_numpy(v) for k, v in pad_batch(train_enc, rows).items()}
            loss = model(**batch, labels=targets[rows]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
        accuracy = score(task, predict_logits(model, dev_enc, runtime), dev_enc.targets.tolist())["accuracy"]
        if accuracy > best:
            best, kept = accuracy, {k: v.detach().clone() for k, v in model.state_dict().items()}
    return kept


def test_finetune_trains_the_same_weights_as_the_plain_loop(tmp_path, backbone, sst2_200):
    out = tmp_path / "teacher"
    result = invoke(*finetune_args(backbone, sst2_200, out, "--device", "cpu"))
    assert result.exit_code == 0, result.output
    expected = plain_loop_weights(backbone, sst2_200, epochs=2, seed=7)
    got = saved_weights(out)
    assert max_difference({k: expected[k] for k in got}, got) == 0.0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"step", "epoch", "loss", "lr", "examples_per_s"} == set(log[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert [entry["epoch"] for entry in metrics["history"]] == [1, 2] and metrics["best_epoch"] in (1, 2)
    assert not list(tmp_path.glob(".teacher*")), "the working folder was left behind"


def test_finetune_resumes_after_sigkill_and_ctrl_c_to_the_same_weights(tmp_path, backbone, sst2_200):
    def args(out: Path, *extra) -> list:
        return finetune_args(backbone, sst2_200, out, "--checkpoint-every", "4", *extra)

    reference = tmp_path / "uninterrupted"
    assert invoke_one_thread(*args(reference)).exit_code == 0

    killed, partial = tmp_path / "killed", tmp_path / ".killed.partial"
    crash = interrupt_after_first_checkpoint(args(killed), partial, signal.SIGKILL)
    assert crash.returncode == -signal.SIGKILL and not killed.exists()
    assert_one_line_error(invoke(*args(killed)), 2, "pass --resume to continue it")
    resumed = invoke_one_thread(*args(killed, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert max_difference(saved_weights(reference), saved_weights(killed)) == 0.0
    assert not partial.exists()
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["resumed_from_step"] is not None and metrics["resumed_from_step"] > 0

    stopped = tmp_path / "stopped"
    interrupted = interrupt_after_first_checkpoint(args(stopped), tmp_path / ".stopped.partial", signal.SIGINT)
    assert interrupted.returncode == 130 and "Traceback" not in interrupted.stderr
    assert "checkpoint saved" in interrupted.stderr and "--resume" in interrupted.stderr
    assert_one_line_error(invoke(*args(stopped, "--resume", "--lr", "3e-4")), 2, "was made with --lr 0.0001")
    assert invoke_one_thread(*args(stopped, "--resume")).exit_code == 0
    assert max_difference(saved_weights(reference), saved_weights(stopped)) == 0.0


def test_finetune_under_torchrun_matches_one_process(tmp_path, backbone_dir, sst2_200):
    model = build_tiny_bert(tmp_path / "m", backbone_dir, num_labels=None, layers=2, hidden=32, seed=3)
    config = json.loads((model / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # same computation on 1 or 2 ranks
    (model / "config.json").write_text(json.dumps(config))
    assert invoke_one_thread(*finetune_args(model, sst2_200, tmp_path / "one", "--device", "cpu")).exit_code == 0
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
              "codir_edge", *map(str, finetune_args(model, sst2_200, tmp_path / "two", "--device", "cpu"))]  # fmt: skip
    done = subprocess.run(launch, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["world_size"] == 2
    assert max_difference(saved_weights(tmp_path / "one"), saved_weights(tmp_path / "two")) < 1e-4


def test_a_diverging_finetune_names_the_loss_and_keeps_nothing(tmp_path, backbone, sst2_200):
    result = invoke(*finetune_args(backbone, sst2_200, tmp_path / "t", "--lr", "1e30"))
    assert_one_line_error(result, 1, "the loss (", "diverged at step", "a lower --lr")
    assert not (tmp_path / "t").exists()
