"""Distillation step cost: median step time of ``codir``, ``kd``, ``mse`` and ``none`` on the same
student, batches and lengths, interleaved in one process so machine noise hits all four; plus the
one-off cost of the teacher bank. Target: ``codir`` at most 1.15 times ``none``. ``kd+unlabeled``
and ``codir+unlabeled`` take the same batches with half the bank's rows marked as a transfer set
(no label: CE on the others, negatives by the teacher's argmax), so they say whether a row without
a label costs a step more than a labelled one.

    python benchmarks/compress_step_cost.py [--examples 4000] [--steps 20] [--rounds 5] [--negatives K] [--device auto]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
from _models import ROOT, teacher_folder, write_result

OBJECTIVES = ("none", "kd", "mse", "codir")
VARIANTS = (*OBJECTIVES, "kd+unlabeled", "codir+unlabeled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=4000, help="training examples in the bank")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per objective per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--student-layers", type=int, default=3)
    parser.add_argument("--negatives", type=int, default=None, help="K for codir (default: the trainer's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    import torch

    from codir_edge.compress.bank.build import compute_summaries as compute_bank
    from codir_edge.compress.bank.build import make_teacher_bank
    from codir_edge.compress.bank.negatives import NegativeSampler
    from codir_edge.compress.config import FineConfig
    from codir_edge.compress.objectives import Distiller
    from codir_edge.compress.student import layer_map, skip_student
    from codir_edge.compress.transfer import teacher_targets
    from codir_edge.data import DataSpec, get_task, load_train_dev
    from codir_edge.data.encode import encode, pad_batch, train_batches
    from codir_edge.models.loading import load_tokenizer, load_trained_classifier
    from codir_edge.models.predict import to_device
    from codir_edge.models.runtime import resolve_runtime
    from codir_edge.training.distributed import Dist
    from codir_edge.training.engine import train_step
    from codir_edge.training.optim import build_optimizer, linear_schedule

    runtime = resolve_runtime(args.device, args.precision)
    task = get_task("sst2")
    teacher_dir = teacher_folder()
    train, _dev, _labels = load_train_dev(task, DataSpec(str(ROOT.parent / "shared" / "data" / "glue" / "SST-2")))
    train = train.subsample(args.examples, 0)
    tokenizer = load_tokenizer(teacher_dir)
    enc = encode(tokenizer, train, args.max_length)
    teacher = load_trained_classifier(teacher_dir).to(runtime.device)
    mapping = layer_map(teacher.config.num_hidden_layers, args.student_layers)

    banks, bank_seconds = {}, {}
    labeled = args.examples // 2  # rows from here on stand for unlabelled text in the +unlabeled variants
    for pooling in ("mean", "cls"):
        started = time.perf_counter()
        feats, logits = compute_bank(teacher, enc, mapping, pooling, runtime, 128, Dist())
        bank_seconds[pooling] = time.perf_counter() - started
        banks[pooling] = make_teacher_bank(feats, logits, enc.targets, runtime.device)
        if pooling == "mean":
            guessed = teacher_targets(torch.as_tensor(enc.targets), logits, labeled, False)
            banks["transfer"] = make_teacher_bank(feats, logits, guessed, runtime.device)
    base_student = skip_student(teacher, args.student_layers).to(runtime.device)
    width = teacher.config.hidden_size

    states = {}
    for variant in VARIANTS:
        objective, transfer = variant.split("+")[0], variant.endswith("+unlabeled")
        k = {"negatives": args.negatives} if args.negatives else {}
        config = FineConfig(
            task="sst2", objective=objective, batch_size=args.batch_size, max_length=args.max_length, **k
        )
        bank = banks["transfer" if transfer else config.bank_pooling]
        torch.manual_seed(0)
        distiller = Distiller(copy.deepcopy(base_student), bank, config, False, width, width,
                              labeled_rows=labeled if transfer else None).to(runtime.device)  # fmt: skip
        optimizer = build_optimizer(distiller.named_parameters(), config.lr, config.weight_decay)
        scheduler = linear_schedule(optimizer, 10**6, 0.0)
        scaler = torch.amp.GradScaler("cuda", enabled=runtime.needs_grad_scaler)
        sampler = (
            NegativeSampler(bank.targets, config.negatives, False, None, 0, bank.features.device)
            if objective == "codir"
            else None
        )
        states[variant] = (distiller, optimizer, scheduler, scaler, sampler, config)

    batches = train_batches(enc.lengths, args.batch_size, np.random.default_rng(0))
    targets_all = torch.from_numpy(enc.targets)
    times: dict[str, list[float]] = {o: [] for o in VARIANTS}
    rng = np.random.default_rng(1)

    def run(objective: str, rows: np.ndarray) -> float:
        distiller, optimizer, scheduler, scaler, sampler, config = states[objective]
        started = time.perf_counter()
        negatives = sampler.sample(distiller.bank.targets[torch.from_numpy(rows)]) if sampler else None
        inputs = to_device(pad_batch(enc, rows), runtime)
        targets = targets_all[rows].to(runtime.device, non_blocking=True)
        train_step(
            distiller, optimizer, scheduler, scaler, runtime, 1.0, inputs, torch.from_numpy(rows), targets, negatives
        )
        if runtime.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    for objective in VARIANTS:  # warm-up: allocator, oneDNN kernels
        for rows in batches[:3]:
            run(objective, rows)
    cursor = 3
    for _round in range(args.rounds):
        chunk = [batches[(cursor + i) % len(batches)] for i in range(args.steps)]
        cursor += args.steps
        for objective in rng.permutation(VARIANTS):
            for rows in chunk:
                times[str(objective)].append(run(str(objective), rows))

    medians = {o: statistics.median(t) * 1000 for o, t in times.items()}
    print(f"{'objective':<10} {'median step ms':>15} {'ratio to none':>14}")
    for objective in VARIANTS:
        print(f"{objective:<16} {medians[objective]:>15.1f} {medians[objective] / medians['none']:>14.3f}")
    rate = {p: args.examples / s for p, s in bank_seconds.items()}
    print(f"teacher bank: {bank_seconds['mean']:.1f} s for {args.examples} examples ({rate['mean']:.0f}/s)")
    path = write_result(
        f"compress_step_cost_k{states['codir'][5].negatives}",
        {
            "device": runtime.device,
            "precision": runtime.precision,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "student_layers": args.student_layers,
            "examples": args.examples,
            "negatives": states["codir"][5].negatives,
            "steps_per_objective": len(times["none"]),
            "median_step_ms": medians,
            "ratio_to_none": {o: medians[o] / medians["none"] for o in VARIANTS},
            "unlabeled_rows_in_transfer_variants": args.examples - labeled,
            "bank_seconds": bank_seconds,
            "bank_examples_per_s": rate,
            "mean_tokens_per_batch": float(np.mean([enc.lengths[b].max() * len(b) for b in batches])),
            "threads": torch.get_num_threads(),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
