"""The teacher memory bank: one inference pass of the frozen teacher, then no teacher at all.

Unlike CRD and the CoDIR release (projected features refreshed by a moving average, a teacher
forward pass per step), the bank holds the teacher's *raw* pooled features and logits for every
training example, so the current projection head applies to exact, never stale negatives, and a
distillation step costs about one student step (codir.md, "The memory bank").

The bank is cached as a safetensors file keyed by a hash of everything that determines it (teacher
weights, token ids, targets, layers, pooling), so a second run on the same teacher and data skips
the teacher pass entirely.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codir_edge.data.encode import Encoded, eval_batches, pad_batch
from codir_edge.distill.distributed import Dist, all_gather_rows, barrier
from codir_edge.distill.features import layer_summaries
from codir_edge.models.predict import to_device
from codir_edge.models.runtime import Runtime

BANK_FORMAT = 1
CACHE_FOLDER = "cache"


@dataclass(frozen=True)
class BankInfo:
    key: str
    examples: int
    feature_dim: int
    bytes: int
    build_seconds: float  # 0 when it came from the cache
    reused_from: str | None
    location: str  # the device that holds it

    @classmethod
    def of(cls, bank, key: str, build_seconds: float, reused_from: str | None) -> BankInfo:
        return cls(
            key=key,
            examples=len(bank),
            feature_dim=int(bank.features.shape[1]),
            bytes=bank.nbytes,
            build_seconds=build_seconds,
            reused_from=reused_from,
            location=str(bank.features.device),
        )


def bank_key(
    teacher_digest: str, encoded: Encoded, layers: list[int], pooling: str, max_length: int, with_logits: bool = True
) -> str:
    """Hash of what the bank's contents depend on. Token ids stand in for the data, the tokenizer
    and the truncation at once."""
    digest = hashlib.sha256()
    meta = {"format": BANK_FORMAT, "teacher": teacher_digest, "layers": layers, "pooling": pooling, "max": max_length}
    if not with_logits:  # a backbone's bank (CoDIR-Pre); fine-stage keys stay as they were
        meta["logits"] = False
    digest.update(json.dumps(meta, sort_keys=True).encode())
    for ids in encoded.input_ids:
        digest.update(np.int64(len(ids)).tobytes())
        digest.update(ids.tobytes())
    if encoded.token_type_ids is not None:
        for types in encoded.token_type_ids:
            digest.update(types.tobytes())
    digest.update(encoded.targets.tobytes())
    return digest.hexdigest()[:20]


def bank_file(folder: Path, key: str) -> Path:
    return Path(folder) / CACHE_FOLDER / f"teacher-bank-{key}.safetensors"


def compute_bank(
    teacher,
    encoded: Encoded,
    layers: list[int],
    pooling: str,
    runtime: Runtime,
    batch_size: int,
    dist,
    with_logits: bool = True,
):
    """Teacher summaries and logits for every example, each rank doing a share, then gathered.

    Returns features (N, len(layers) * d_T) and logits (N, C), both float16 on the CPU, in the
    order of ``encoded``. Length-sorted batches keep padding (and so the pass) short. Without
    logits (a backbone, or the student summarised for evaluation) only the encoder runs and the
    logits are (N, 0): an MLM head's logits are per token and would not fit in a bank.
    """
    import torch

    batches = eval_batches(encoded.lengths, batch_size)[dist.rank :: dist.world]
    rows, feats, logits = [], [], []
    model = teacher if with_logits else teacher.base_model
    model.eval()
    classes = teacher.config.num_labels if with_logits else 0
    with torch.inference_mode(), runtime.autocast():
        for indices in batches:
            batch = to_device(pad_batch(encoded, indices), runtime)
            out = model(**batch, output_hidden_states=True)
            feats.append(layer_summaries(out.hidden_states, batch["attention_mask"], layers, pooling).half())
            scores = out.logits.float() if with_logits else torch.zeros((len(indices), 0), device=runtime.device)
            logits.append(scores.half())
            rows.append(torch.as_tensor(indices))
    width = teacher.config.hidden_size * len(layers)
    device = runtime.device
    local_rows = torch.cat(rows).to(device) if rows else torch.zeros(0, dtype=torch.int64, device=device)
    local_feats = torch.cat(feats) if feats else torch.zeros((0, width), dtype=torch.float16, device=device)
    local_logits = torch.cat(logits) if logits else torch.zeros((0, classes), dtype=torch.float16, device=device)
    all_rows = all_gather_rows(local_rows.unsqueeze(1), dist).squeeze(1).long().cpu()
    all_feats = all_gather_rows(local_feats, dist).cpu()
    all_logits = all_gather_rows(local_logits, dist).cpu()
    features = torch.empty((len(encoded), width), dtype=torch.float16)
    scores = torch.empty((len(encoded), classes), dtype=torch.float16)
    features[all_rows] = all_feats
    scores[all_rows] = all_logits
    return features, scores


def save_bank(path: Path, features, logits, key: str) -> None:
    """Atomic: a killed run never leaves a truncated bank under the cache name."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        save_file({"features": features.contiguous(), "logits": logits.contiguous()}, tmp, metadata={"key": key})
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_bank(path: Path, key: str, examples: int):
    """The cached bank when it exists, holds ``key`` and has one row per example; else None."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("key") != key:
                return None
            features, logits = handle.get_tensor("features"), handle.get_tensor("logits")
    except (SafetensorError, OSError, KeyError):
        return None  # a damaged cache is rebuilt, never trusted
    if features.shape[0] != examples or logits.shape[0] != examples:
        return None
    return features, logits


def obtain_bank(
    teacher,
    encoded: Encoded,
    layers: list[int],
    pooling: str,
    runtime: Runtime,
    batch_size: int,
    key: str,
    cache_dirs: list[Path],
    save_dir: Path,
    dist: Dist,
    with_logits: bool = True,
):
    """The bank from the first cache folder that holds it, else built (sharded over ranks) and saved
    into ``save_dir`` by rank 0. Returns (features, logits, seconds spent building, reused path)."""
    for folder in cache_dirs:
        found = load_bank(bank_file(folder, key), key, len(encoded))
        if found is not None:
            if dist.is_main and Path(folder) != Path(save_dir):
                save_bank(bank_file(save_dir, key), *found, key)
            barrier(dist)
            return (*found, 0.0, str(bank_file(folder, key)))
    started = time.perf_counter()
    features, logits = compute_bank(teacher, encoded, layers, pooling, runtime, batch_size, dist, with_logits)
    seconds = time.perf_counter() - started
    if dist.is_main:
        save_bank(bank_file(save_dir, key), features, logits, key)
    barrier(dist)
    return features, logits, seconds, None


def bank_device(runtime: Runtime, nbytes: int) -> str:
    """On the GPU when the bank takes at most a quarter of its free memory (the rest is for training),
    else in host memory, pinned so that gathered negatives copy asynchronously."""
    if not runtime.is_cuda:
        return "cpu"
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(runtime.device))
    return runtime.device if nbytes <= free // 4 else "cpu"


def make_teacher_bank(features, logits, targets, device: str):
    import torch

    from codir_edge.distill.losses import TeacherBank

    bank = TeacherBank(features, logits, torch.as_tensor(targets))
    if device == "cpu":
        if torch.cuda.is_available():
            bank.pin()
        return bank
    return bank.to(device)
