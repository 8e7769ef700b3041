"""One inference pass of the frozen teacher fills the bank; then no teacher at all.

Unlike CRD and the CoDIR release (projected features refreshed by a moving average, a teacher
forward pass per step), the bank holds the teacher's *raw* pooled features and logits for every
training example, so the current projection head applies to exact, never stale negatives, and a
distillation step costs about one student step (codir.md, "The memory bank").

The pass runs in rounds of one length-sorted batch per rank; each round's rows are gathered from
every rank and streamed to the bank file (rank 0 writes), so neither a rank nor the writer ever holds
more than a round. The file is keyed by a hash of everything that determines it (teacher weights,
token ids, targets, layers, pooling): a second run on the same teacher and data skips the pass.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from codir_edge.compress.bank.cache import BankWriter, bank_file, open_bank
from codir_edge.compress.bank.table import TeacherBank
from codir_edge.compress.features import layer_summaries
from codir_edge.core.progress import Bars, tracked
from codir_edge.data.encode import Encoded, eval_batches, pad_batch
from codir_edge.models.predict import to_device
from codir_edge.models.runtime import Runtime
from codir_edge.training.distributed import Dist, all_gather_rows, barrier

DISK = "disk"  # the bank stays in its file and each step reads its rows


@dataclass(frozen=True)
class BankInfo:
    key: str
    examples: int
    feature_dim: int
    bytes: int
    build_seconds: float  # 0 when it came from the cache
    reused_from: str | None
    location: str  # the device that holds it, or "disk" when each step reads its rows from the file

    @classmethod
    def of(cls, bank: TeacherBank, key: str, build_seconds: float, reused_from: str | None) -> BankInfo:
        return cls(
            key=key,
            examples=len(bank),
            feature_dim=int(bank.features.shape[1]),
            bytes=bank.nbytes,
            build_seconds=build_seconds,
            reused_from=reused_from,
            location=DISK if bank.on_disk else str(bank.device),
        )


def summary_rounds(model, encoded: Encoded, layers, pooling, runtime: Runtime, batch_size: int, dist,
                   with_logits: bool = True, embedding: str | None = None) -> Iterator[tuple]:  # fmt: skip
    """(rows, features, logits) of every example, one round at a time, gathered from every rank.

    Each rank runs one length-sorted batch per round (padding stays short); features are
    (R, len(layers) * d) and logits (R, C) float16 on the CPU, or (R, 0) without logits (a backbone,
    or a student summarised for evaluation: an MLM head's logits are per token and fit no bank).
    With ``embedding`` (a pooling), the logits' place holds the pooled last layer (R, d) instead: an
    embedding model's output before any normalisation, what its objectives match.
    """
    import torch

    from codir_edge.models.sentence import pool

    batches = eval_batches(encoded.lengths, batch_size)
    network = model if with_logits and embedding is None else model.base_model
    network.eval()
    width = model.config.hidden_size * len(layers)
    classes = _output_width(model, with_logits, embedding)
    device = runtime.device
    with torch.inference_mode(), runtime.autocast():
        for first in range(0, len(batches), dist.world):
            mine = first + dist.rank
            if mine < len(batches):
                indices = batches[mine]
                batch = to_device(pad_batch(encoded, indices), runtime)
                out = network(**batch, output_hidden_states=True)
                feats = layer_summaries(out.hidden_states, batch["attention_mask"], layers, pooling).half()
                if embedding is not None:
                    scores = pool(out.last_hidden_state, batch["attention_mask"], embedding).half()
                elif with_logits:
                    scores = out.logits.float().half()
                else:
                    scores = torch.zeros((len(indices), 0), device=device)
                rows = torch.as_tensor(indices, device=device)
            else:  # this rank has no batch left in the last round
                feats = torch.zeros((0, width), dtype=torch.float16, device=device)
                scores = torch.zeros((0, classes), dtype=torch.float16, device=device)
                rows = torch.zeros(0, dtype=torch.int64, device=device)
            all_rows = all_gather_rows(rows.unsqueeze(1), dist).squeeze(1).long().cpu()
            yield all_rows, all_gather_rows(feats, dist).cpu(), all_gather_rows(scores.half(), dist).cpu()


def _output_width(model, with_logits: bool, embedding: str | None) -> int:
    if embedding is not None:
        return model.config.hidden_size
    return model.config.num_labels if with_logits else 0


def compute_summaries(model, encoded: Encoded, layers, pooling, runtime, batch_size, dist, with_logits=True,
                      embedding: str | None = None):  # fmt: skip
    """(features, logits) in memory, in the order of ``encoded``: for small sets (a held-out slice)."""
    import torch

    width = model.config.hidden_size * len(layers)
    classes = _output_width(model, with_logits, embedding)
    features = torch.empty((len(encoded), width), dtype=torch.float16)
    logits = torch.empty((len(encoded), classes), dtype=torch.float16)
    rounds = summary_rounds(model, encoded, layers, pooling, runtime, batch_size, dist, with_logits, embedding)
    for rows, feats, scores in rounds:
        features[rows] = feats
        logits[rows] = scores
    return features, logits


def write_bank(path: Path, key: str, teacher, encoded: Encoded, layers, pooling, runtime, batch_size, dist,
               with_logits: bool = True, progress: Bars | None = None,
               embedding: str | None = None) -> None:  # fmt: skip
    """Stream the teacher's summaries of every example into the bank file at ``path`` (rank 0 writes)."""
    width = teacher.config.hidden_size * len(layers)
    classes = _output_width(teacher, with_logits, embedding)
    rounds = summary_rounds(teacher, encoded, layers, pooling, runtime, batch_size, dist, with_logits, embedding)
    lengths = encoded.lengths  # batches run shortest first: tokens, not examples, say how much is left
    rounds = tracked(rounds, progress, "teacher bank", len(encoded), "ex", size=lambda done: len(done[0]),
                     work=lambda done: float(lengths[done[0].numpy()].sum()),
                     work_total=float(lengths.sum()))  # fmt: skip
    if not dist.is_main:
        for _ in rounds:  # the other ranks compute their share and take part in every gather
            pass
        return
    with BankWriter(path, key, len(encoded), width, classes) as writer:
        for rows, feats, scores in rounds:
            writer.write(rows.numpy(), feats.numpy(), scores.numpy())
        writer.commit()


def obtain_bank(teacher, encoded: Encoded, layers, pooling, runtime: Runtime, batch_size: int, key: str,
                cache_dirs: list[Path], save_dir: Path, dist: Dist, with_logits: bool = True,
                progress: Bars | None = None, embedding: str | None = None):  # fmt: skip
    """(features, logits, seconds spent building, reused path): the bank from the first cache folder
    that holds it (copied into ``save_dir``), else built into ``save_dir``; both as views of the file
    in ``save_dir`` (``FileTable``), opened by every rank."""
    target = bank_file(save_dir, key)
    reused, seconds = None, 0.0
    for folder in cache_dirs:
        source = bank_file(folder, key)
        if open_bank(source, key, len(encoded)) is not None:
            reused = str(source)
            if dist.is_main and source.resolve() != target.resolve():
                _copy_atomic(source, target)
            break
    if reused is None:
        started = time.perf_counter()
        write_bank(target, key, teacher, encoded, layers, pooling, runtime, batch_size, dist, with_logits, progress,
                   embedding)  # fmt: skip
        seconds = time.perf_counter() - started
    barrier(dist)
    opened = open_bank(target, key, len(encoded))
    if opened is None:
        raise RuntimeError(f"the teacher bank {target} could not be read back after it was written")
    return (*opened, seconds, reused)


def _copy_atomic(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-copy")
    shutil.copyfile(source, tmp)
    tmp.replace(target)


def bank_device(runtime: Runtime, nbytes: int) -> str:
    """Where training reads the bank from: the GPU when it takes at most a quarter of its free memory
    (the rest is for training), host memory when it is small, else its file on disk."""
    from codir_edge.compress.bank.table import IN_MEMORY_BYTES

    if runtime.is_cuda:
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(runtime.device))
        if nbytes <= free // 4:
            return runtime.device
    return "cpu" if nbytes <= IN_MEMORY_BYTES else DISK


def make_teacher_bank(features, logits, targets, device: str) -> TeacherBank:
    """The bank on ``device`` ("cpu", "cuda[:N]" or ``DISK``), from tensors or the bank file's tables."""
    import torch

    bank = TeacherBank(features, logits, torch.as_tensor(targets))
    return (
        bank
        if device == DISK or (device == "cpu" and not bank.on_disk and bank.device.type == "cpu")
        else bank.to(device)
    )
