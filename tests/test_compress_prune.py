"""Width pruning inside compress (heads and FFN neurons) and a student shaped to a latency budget.

Removal is checked against masking on every family's tiny random classifier (what the kept units
compute must not change), importance against units that provably do nothing, and the CLI end to
end: a pruned student that transformers loads without custom code, exports with parity, verifies
and profiles; a budget met by real INT8 timings on this machine, and one no shape can meet.
"""

from __future__ import annotations

import copy
import json
import signal
from pathlib import Path

import pytest
import torch
from cli_helpers import (
    assert_one_line_error,
    compress_args,
    interrupt_after_first_checkpoint,
    invoke,
    invoke_one_thread,
    max_difference,
    weights_of,
)
from conftest import tiny_teacher
from families import build_family_classifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codir_edge.compress.prune import (
    apply_plan,
    ffn_width,
    make_plan,
    masked,
    plan_masks,
    score_importance,
    units,
)
from codir_edge.compress.shapes import Shape, candidate_shapes, largest_that_fits, parameters
from codir_edge.models.families import FAMILIES, family_of, heads


@pytest.fixture(scope="module")
def family_models(tmp_path_factory, glue_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {family: build_family_classifier(family, root / family, glue_dir) for family in FAMILIES}


def _inputs(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 300, (3, 14), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # padding must stay padding in the pruned model too
    return {"input_ids": ids, "attention_mask": mask}


def _random_plan(model, heads_keep: float, ffn_keep: float, seed: int):
    family = family_of(model.config)
    generator = torch.Generator().manual_seed(seed)
    blocks = len(units(model, family))
    head_scores = torch.rand(blocks, heads(model.config), generator=generator) if family.attn_out else None
    ffn_scores = torch.rand(blocks, ffn_width(model.config), generator=generator)
    keep = heads_keep if family.attn_out else 1.0
    return make_plan(head_scores, ffn_scores, list(range(blocks)), keep, ffn_keep)


def _masked_removed_reloaded(model, plan, folder: Path):
    """(logits with the plan as masks, after removal, after save_pretrained + from_pretrained)."""
    from transformers import AutoModelForSequenceClassification

    inputs = _inputs()
    with torch.no_grad():
        head_mask, ffn_mask = plan_masks(plan)
        with masked(model, head_mask, ffn_mask):
            reference = model(**inputs).logits
        pruned = copy.deepcopy(model)
        apply_plan(pruned, plan)
        removed = pruned(**inputs).logits
        pruned.save_pretrained(folder)
        reloaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()  # no custom code
        again = reloaded(**inputs).logits
    return reference, removed, again, pruned


@pytest.mark.parametrize("family", list(FAMILIES))
def test_removing_masked_heads_and_neurons_leaves_the_kept_computation_exact(tmp_path, family_models, family):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(family_models[family]).eval()
    plan = _random_plan(model, 0.5, 0.5, seed=1)
    reference, removed, again, pruned = _masked_removed_reloaded(model, plan, tmp_path / "pruned")
    assert torch.allclose(reference, removed, atol=1e-5), (reference, removed)
    assert torch.equal(removed, again)
    assert ffn_width(pruned.config) == ffn_width(model.config) // 2
    fewer = sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    assert fewer
    if FAMILIES[family].attn_out is not None:  # pruned heads are what the checkpoint records
        assert {int(k): v for k, v in pruned.config.pruned_heads.items()} == dict(enumerate(plan.removed_heads))
    with torch.no_grad():  # and the masks really remove something: the full model computes otherwise
        assert not torch.allclose(model(**_inputs()).logits, removed, atol=1e-6)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(heads_keep=st.sampled_from([0.25, 0.5, 0.75, 1.0]), ffn_keep=st.floats(0.01, 1.0), seed=st.integers(0, 99))
def test_masked_equals_removed_for_any_fractions(tmp_path, family_models, heads_keep, ffn_keep, seed):
    from transformers import AutoModelForSequenceClassification, BertConfig

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=400, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=40, max_position_embeddings=64, num_labels=3)  # fmt: skip
    model = AutoModelForSequenceClassification.from_config(config).eval()
    plan = _random_plan(model, heads_keep, ffn_keep, seed)
    reference, removed, again, pruned = _masked_removed_reloaded(model, plan, tmp_path / f"p{seed}")
    assert torch.allclose(reference, removed, atol=1e-5) and torch.equal(removed, again)
    assert pruned.config.intermediate_size == max(1, round(40 * ffn_keep))


def test_importance_ranks_units_that_do_nothing_last(teacher, sst2_small):
    """A head whose output projection columns are zero, and FFN neurons whose output columns are zero,
    cannot change the loss: their importance is exactly zero and they are the ones removed."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(teacher).eval()
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    dead_neurons = list(range(0, 64, 2))
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            layer.attention.output.dense.weight[:, head_dim : 2 * head_dim] = 0.0  # head 1
            layer.output.dense.weight[:, dead_neurons] = 0.0
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    lines = (sst2_small / "train.tsv").read_text().splitlines()[1:33]
    texts, labels = [line.split("\t")[0] for line in lines], [int(line.split("\t")[1]) for line in lines]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    head_scores, ffn_scores = score_importance(model, [(dict(batch), torch.tensor(labels))], regression=False)
    assert torch.all(head_scores[:, 1] == 0) and torch.all(head_scores[:, 0] > 0)
    assert torch.all(ffn_scores[:, dead_neurons] == 0)
    plan = make_plan(head_scores, ffn_scores, [1, 3], heads_keep=0.5, ffn_keep=0.5)
    assert plan.removed_heads == [[1], [1]]
    assert all(set(kept).isdisjoint(dead_neurons) for kept in plan.kept_neurons)
    assert all(not p.requires_grad or p.grad is None for p in model.parameters())  # the teacher is left as it was


def test_regression_importance_follows_the_squared_error():
    """A regression teacher (STS-B's one output) is scored with its own loss, and only the masks get
    gradients: the heads and neurons it reads get importance, the weights none."""
    from transformers import AutoModelForSequenceClassification, BertConfig

    torch.manual_seed(0)
    config = BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=24, max_position_embeddings=32, num_labels=1)  # fmt: skip
    model = AutoModelForSequenceClassification.from_config(config)
    inputs = _inputs()
    inputs["input_ids"] = inputs["input_ids"] % 200
    head_scores, ffn_scores = score_importance(model, [(inputs, torch.tensor([0.5, 4.0, 2.5]))], regression=True)
    assert head_scores.shape == (2, 4) and ffn_scores.shape == (2, 24)
    assert torch.all(head_scores > 0) and torch.all(ffn_scores >= 0) and ffn_scores.sum() > 0
    assert all(p.grad is None for p in model.parameters()) and model.training  # left as it was found


@pytest.mark.slow
def test_two_gloo_processes_prune_as_one_process(tmp_path, backbone_dir, sst2_small):
    """Rank 0 decides the plan and shares it; the two ranks then train the same pruned student."""
    import os
    import subprocess
    import sys

    teacher = tiny_teacher(tmp_path / "teacher", backbone_dir, dropout=False)
    extra = ["--device", "cpu", "--heads-keep", "0.5", "--ffn-keep", "0.5"]
    single = invoke_one_thread(*compress_args(teacher, sst2_small, tmp_path / "one", *extra))
    assert single.exit_code == 0, single.output
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
              "-m", "codir_edge", *map(str, compress_args(teacher, sst2_small, tmp_path / "two", *extra))]  # fmt: skip
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["world_size"] == 2
    assert two["pruning"]["removed_heads"] == json.loads((tmp_path / "one" / "metrics.json").read_text())["pruning"][
        "removed_heads"
    ]
    assert max_difference(weights_of(tmp_path / "one"), weights_of(tmp_path / "two")) < 1e-4


@pytest.mark.slow
def test_pruned_student_loads_without_custom_code_exports_with_parity_and_profiles(tmp_path, teacher, sst2_small):
    from transformers import AutoModelForSequenceClassification

    student = tmp_path / "student"
    result = invoke(*compress_args(teacher, sst2_small, student, "--student-layers", "4", "--heads-keep", "0.5",
                                   "--ffn-keep", "0.5", "--json", tmp_path / "s.json"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "pruned: 1 of 2 heads and 32 of 64 FFN neurons per layer kept" in result.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["pruning"]["heads_per_layer"] == 1 and summary["student_layers"] == 4
    config = json.loads((student / "config.json").read_text())
    assert config["intermediate_size"] == 32 and len(config["pruned_heads"]) == 4
    assert all(len(removed) == 1 for removed in config["pruned_heads"].values())
    loaded = AutoModelForSequenceClassification.from_pretrained(student)
    assert sum(p.numel() for p in loaded.parameters()) == summary["student_parameters"]

    bundle = tmp_path / "bundle"
    result = invoke("export", student, "--out", bundle, "--quantize", "dynamic", "--task", "sst2", "--data",
                    sst2_small, "--max-length", "32", "--no-ort", "--no-tokenizer-in-graph")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["parity"]["max_abs_diff"] <= 1e-4
    assert manifest["fused_operators"]["offline_fusion"]["Attention"] == 4  # fused with one head per layer
    assert invoke("verify", bundle).exit_code == 0
    result = invoke("profile", bundle, "--threads", "1", "--batch-sizes", "1", "--seq-lens", "16", "--runs", "3",
                    "--warmup", "1", "--quiet", "--json", tmp_path / "p.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert all(r["p50_ms"] > 0 for r in json.loads((tmp_path / "p.json").read_text())["results"])


def test_a_generous_budget_gets_the_largest_shape(tmp_path, teacher, sst2_small):
    out = tmp_path / "student"
    result = invoke(*compress_args(teacher, sst2_small, out, "--latency-budget", "1000", "--budget-seq-len", "real",
                                   "--json", tmp_path / "s.json"))  # fmt: skip
    assert result.exit_code == 0, result.output
    search = json.loads((tmp_path / "s.json").read_text())["shape_search"]
    largest = max(search["candidates"], key=lambda row: row["parameters"])
    assert search["chosen"]["parameters"] == largest["parameters"] and largest["status"] == "chosen"
    assert search["timed"] == 2  # the fastest shape (is anything possible?) and the largest
    assert search["chosen"]["p95_ms"] <= 1000 and search["seq_len"] == "real"
    config = json.loads((out / "config.json").read_text())
    chosen = search["chosen"]
    assert (config["num_hidden_layers"], config["intermediate_size"]) == (chosen["layers"], chosen["ffn"])
    assert "latency budget 1000 ms" in result.output and "chose" in result.output


def test_an_impossible_budget_gets_one_line_naming_the_fastest_shape(tmp_path, teacher, sst2_small, no_leftovers):
    out = tmp_path / "student"
    result = invoke(*compress_args(teacher, sst2_small, out, "--latency-budget", "0.0001"))
    assert_one_line_error(result, 2, "no student shape meets --latency-budget 0.0001 ms", "the fastest (1 layers",
                          "measured p95")  # fmt: skip
    no_leftovers(out)


def test_candidate_shapes_cover_depth_heads_and_width_without_the_teacher(family_models):
    from transformers import AutoConfig

    for family, folder in family_models.items():
        config = AutoConfig.from_pretrained(folder)
        shapes = candidate_shapes(config)
        teacher = Shape(config.num_hidden_layers if hasattr(config, "num_hidden_layers") else config.n_layers,
                        heads(config), ffn_width(config))  # fmt: skip
        assert teacher not in shapes and all(teacher.contains(s) for s in shapes)
        head_counts = {s.heads for s in shapes}
        assert head_counts == ({1, 2} if FAMILIES[family].attn_out else {2}), family
        sizes = [parameters(config, s) for s in shapes]
        largest = parameters(config, teacher)
        # ALBERT's shallower students run its shared block fewer times: as many parameters, less time
        assert (largest >= max(sizes)) if FAMILIES[family].shared_blocks else (largest > max(sizes))
        assert min(sizes) > 0


@settings(max_examples=60, deadline=None)
@given(per_layer=st.floats(0.05, 2.0), per_head=st.floats(0.0, 1.0), per_neuron=st.floats(0.0, 0.01),
       fixed=st.floats(0.0, 3.0), budget=st.floats(0.1, 40.0))  # fmt: skip
def test_the_search_finds_the_largest_fitting_shape_with_fewer_timings(per_layer, per_head, per_neuron, fixed, budget):
    """Against every shape timed: for any latency that grows with depth, heads and width, deciding
    shapes from others' timings never changes the answer, and it takes at most 20 of the 95 timings."""
    layers, total_heads, total_ffn = 6, 12, 1536
    shapes = [Shape(n, h, f) for n in range(1, layers + 1) for h in (3, 6, 9, 12) for f in (384, 768, 1152, 1536)]
    shapes = [s for s in shapes if s != Shape(layers, total_heads, total_ffn)]

    def size(s: Shape) -> int:
        return s.layers * (s.heads * 4 * 32 * 384 + s.ffn * 2 * 384)

    def latency(s: Shape) -> float:
        return fixed + s.layers * (per_layer + per_head * s.heads + per_neuron * s.ffn)

    shapes.sort(key=lambda s: (size(s), s.layers))
    timed = []

    def measure(s: Shape) -> dict:
        timed.append(s)
        return {"p95_ms": latency(s)}

    fitting = [s for s in shapes if latency(s) <= budget]
    if latency(shapes[0]) > budget:
        assert not fitting  # the fastest is the smallest here: nothing else can fit
        return
    progress = []
    chosen, rows = largest_that_fits(shapes, measure, budget, {shapes[0]: measure(shapes[0])},
                                     lambda shape, row, decided: progress.append((shape, decided)))  # fmt: skip
    assert size(chosen) == max(size(s) for s in fitting) and latency(chosen) <= budget
    assert len(set(timed)) == len(timed) <= 20  # of 95: each timing decides many shapes
    assert [shape for shape, _ in progress] == timed[1:]  # every timing after the first is reported
    assert all(a <= b <= len(shapes) for (_, a), (_, b) in zip(progress, progress[1:], strict=False))
    assert all("p95_ms" in rows[s] or rows[s]["status"].startswith("over") for s in rows)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--heads-keep", "0"], "--heads-keep must be in (0, 1]"),
        (["--ffn-keep", "1.5"], "--ffn-keep must be in (0, 1]"),
        (["--latency-budget", "5", "--student-layers", "2"], "--latency-budget picks the student's shape"),
        (["--latency-budget", "-1"], "--latency-budget must be positive"),
        (["--budget-threads", "2"], "--budget-threads applies with --latency-budget only"),
        (["--latency-budget", "5", "--budget-seq-len", "long"], "--budget-seq-len must be a length or 'real'"),
        (["--latency-budget", "5", "--budget-device", "phone"], "--budget-device phone is not a known device"),
        (["--latency-budget", "5", "--budget-seq-len", "4096"], "--budget-seq-len 4096 exceeds the teacher's 128"),
        (["--student-layers", "4"], "(or narrower)"),
        (["--importance-samples", "0"], "--importance-samples must be at least 1"),
    ],
)
def test_bad_shape_options_get_one_line(tmp_path, teacher, sst2_small, no_leftovers, extra, fragment):
    out = tmp_path / "out"
    assert_one_line_error(invoke(*compress_args(teacher, sst2_small, out, *extra)), 2, fragment)
    no_leftovers(out)


def test_a_budget_is_met_on_one_device(tmp_path, teacher, sst2_small, no_leftovers):
    devices = tmp_path / "devices.toml"
    devices.write_text("".join(f'[[device]]\nname = "{n}"\nhost = "127.0.0.1"\n\n' for n in ("a", "b")))
    out = tmp_path / "out"
    result = invoke(*compress_args(teacher, sst2_small, out, "--latency-budget", "5", "--devices", devices))
    assert_one_line_error(result, 2, "--devices names 2 devices", "pick it with --budget-device")
    no_leftovers(out)


def test_pruning_refuses_what_it_cannot_do_in_one_line(tmp_path, teacher, family_models, sst2_small, no_leftovers):
    out = tmp_path / "out"
    deberta = family_models["deberta-v2"]
    result = invoke(*compress_args(deberta, sst2_small, out, "--heads-keep", "0.5"))
    assert_one_line_error(result, 2, "deberta-v2 checkpoints cannot record pruned heads", "--ffn-keep alone")
    result = invoke(*compress_args(teacher, sst2_small, out, "--student", teacher, "--ffn-keep", "0.5"))
    assert_one_line_error(result, 2, "not --student")
    result = invoke("compress", "--stage", "pre", "--teacher", teacher, "--data", sst2_small, "--out", out,
                    "--ffn-keep", "0.5", "--quiet")  # fmt: skip
    assert_one_line_error(result, 2, "--ffn-keep applies to --stage fine only")
    no_leftovers(out)


@pytest.mark.slow
def test_a_killed_pruned_run_resumes_to_the_same_weights(tmp_path, backbone_dir, sst2_small):
    teacher = tiny_teacher(tmp_path / "teacher", backbone_dir)  # with dropout: RNG states must come back too
    common = ["--batch-size", "4", "--epochs", "2", "--checkpoint-every", "3", "--heads-keep", "0.5",
              "--ffn-keep", "0.25", "--importance-samples", "40"]  # fmt: skip

    def args(out: Path, *extra) -> list:
        return [a for a in compress_args(teacher, sst2_small, out) if a not in ("--epochs", "1")] + common + list(extra)

    reference = tmp_path / "uninterrupted"
    done = invoke_one_thread(*args(reference))
    assert (reference / "model.safetensors").is_file(), done.output
    per_epoch = json.loads((reference / "metrics.json").read_text())["history"][0]["step"]

    killed, partial = tmp_path / "killed", tmp_path / ".killed.partial"
    crash = interrupt_after_first_checkpoint(args(killed), partial, signal.SIGKILL)
    assert crash.returncode == -signal.SIGKILL and not killed.exists()
    assert (partial / "prune_plan.json").is_file()  # the plan the checkpoints were trained with
    state = sorted((partial / "checkpoints").glob("step-*"))[-1].name
    assert int(state.split("-")[1]) < per_epoch, "the kill should land in the first epoch"
    resumed = invoke_one_thread(*args(killed, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert max_difference(weights_of(reference), weights_of(killed)) < 1e-6
    assert json.loads((killed / "config.json").read_text())["intermediate_size"] == 16
