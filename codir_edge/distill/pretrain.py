"""CoDIR-Pre: task-agnostic distillation of a pretrained backbone on unlabelled text, top to bottom.

1. Check everything cheap (teacher is a backbone, student depth, corpus, folders).
2. Split off a held-out slice of the corpus; one teacher pass fills the bank over all of it (cached).
3. Student: the teacher's own class (backbone or masked LM), skip-initialised; the contrastive heads;
   the teacher stays loaded only when its MLM head is needed for KD.
4. Train through the shared engine. Negatives: the rest of the global batch plus K random corpus
   rows; masks and random rows are drawn from the data position, so resume is exact for free.
   Each epoch scores the student on the held-out slice (see ``_evaluate``).
5. Write the general student (a Hugging Face backbone folder) atomically, with metrics.json and
   train_log.jsonl; ``compress --student`` and ``finetune --model`` read it.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from codir_edge.data.corpus import read_corpus
from codir_edge.data.encode import Encoded, encode, eval_batches, pad_batch
from codir_edge.data.examples import Examples
from codir_edge.distill.bank import BankInfo, bank_device, bank_key, compute_bank, make_teacher_bank, obtain_bank
from codir_edge.distill.config import CompressConfig
from codir_edge.distill.distributed import barrier
from codir_edge.distill.engine import Loop
from codir_edge.distill.engine import train as train_student
from codir_edge.distill.masking import IGNORE, mask_tokens
from codir_edge.distill.run_folder import training_run, write_student
from codir_edge.distill.student import check_student_layers, layer_map
from codir_edge.errors import InputError
from codir_edge.extras import require_extra
from codir_edge.models.checkpoint import (
    check_max_length,
    is_sequence_classifier,
    num_layers,
    read_model_config,
    weights_digest,
)
from codir_edge.provenance import provenance

# Masked LMs whose head is one module that maps token states to vocabulary logits (pre_objective.mlm_head).
MLM_HEAD_FAMILIES = ("bert", "roberta", "xlm-roberta", "camembert", "mpnet", "albert", "ernie", "megatron-bert")
MIN_CORPUS = 20  # distinct texts: enough for a held-out slice of 2 and batches with negatives
_MLM_ARCHITECTURES = ("ForMaskedLM", "ForPreTraining")


@dataclass(frozen=True)
class PretrainReport:
    out_dir: Path
    corpus_texts: int  # distinct texts read
    train_texts: int
    held_out: int
    cka: float  # held-out: linear CKA of student and teacher layer summaries (see _evaluate)
    initial_cka: float  # the same for the skip-initialised student, before training
    retrieval_top1: float  # held-out: the student's summary finds the teacher's among all held-out ones
    mlm_accuracy: float | None  # held-out masked tokens predicted, when the teacher has an MLM head
    teacher_mlm_accuracy: float | None
    student_layers: int
    teacher_layers: int
    student_parameters: int
    teacher_parameters: int
    wall_time_s: float
    train_examples_per_s: float
    bank: BankInfo
    resumed_from_step: int | None
    device: str
    precision: str
    world_size: int
    rank: int


def has_mlm_head(config: dict) -> bool:
    return any(a.endswith(_MLM_ARCHITECTURES) for a in config.get("architectures") or [])


def check_backbone(config: dict, teacher_dir: Path) -> None:
    if is_sequence_classifier(config):
        raise InputError(
            f"--teacher {teacher_dir} is a fine-tuned classifier: --stage pre distils a pretrained backbone "
            "(a BertModel or BertForMaskedLM folder); distil a classifier with --stage fine"
        )


def split_corpus(texts: list[str], held_out: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out): a seeded random slice of at most ``held_out`` texts and a tenth of the
    corpus is kept out of training, so the per-epoch score is on sentences the student never read."""
    if len(texts) < MIN_CORPUS:
        raise InputError(
            f"the corpus has {len(texts)} distinct texts, CoDIR-Pre needs at least {MIN_CORPUS}: give more text"
        )
    order = np.random.default_rng(seed).permutation(len(texts))
    size = min(held_out, len(texts) // 10)
    held = sorted(order[:size].tolist())
    train = sorted(order[size:].tolist())
    return [texts[i] for i in train], [texts[i] for i in held]


def run_pretrain(
    teacher_dir: Path,
    corpus: str | Path,
    out_dir: Path,
    config: CompressConfig,
    text_field: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    cache_from: tuple[Path, ...] = (),
    show_progress: bool = True,
) -> PretrainReport:
    require_extra("train", "compress")
    import torch

    from codir_edge.distill.pre_objective import PreDistiller
    from codir_edge.distill.student import count_parameters, hidden_width, skip_student
    from codir_edge.models.loading import load_backbone, load_tokenizer
    from codir_edge.models.predict import host_to, to_device
    from codir_edge.models.runtime import seed_everything

    started = time.perf_counter()
    # ---- 1. cheap checks ------------------------------------------------------------------------
    if config.stage != "pre":
        raise InputError(f"run_pretrain runs --stage pre, the config says {config.stage}")
    teacher_dir, out_dir = Path(teacher_dir), Path(out_dir)
    teacher_config = read_model_config(teacher_dir, "--teacher")
    check_backbone(teacher_config, teacher_dir)
    teacher_layers = num_layers(teacher_config)
    student_layers = check_student_layers(config.student_layers, teacher_layers, teacher_dir)
    check_max_length(teacher_config, config.max_length, teacher_dir)
    mlm = has_mlm_head(teacher_config)
    if mlm and teacher_config.get("model_type") not in MLM_HEAD_FAMILIES:
        raise InputError(
            f"--teacher {teacher_dir} is a {teacher_config.get('model_type')} masked LM, whose MLM head codir-edge "
            f"cannot read: use a {', '.join(MLM_HEAD_FAMILIES)} masked LM, or the bare backbone"
        )
    tokenizer = load_tokenizer(teacher_dir, config.trust_remote_code)
    if mlm and tokenizer.mask_token_id is None:
        raise InputError(f"the tokenizer of --teacher {teacher_dir} has no mask token, so nothing can be masked")
    read = read_corpus(corpus, text_field)
    texts = Examples(read.texts, None, [0] * len(read), str(corpus)).subsample(config.max_train_samples, config.seed)
    train_texts, held_texts = split_corpus(texts.texts, config.held_out, config.seed)
    with training_run(config, out_dir, overwrite, resume) as (dist, runtime, run_dir):
        # ---- 2. the bank over train + held-out ------------------------------------------------------
        seed_everything(config.seed)
        everything = train_texts + held_texts
        encoded = encode(tokenizer, Examples(everything, None, [0] * len(everything), str(corpus)), config.max_length)
        n_train = len(train_texts)
        held = np.arange(n_train, len(encoded))
        teacher = load_backbone(teacher_dir, mlm, config.trust_remote_code).to(runtime.device)
        mapping = layer_map(teacher_layers, student_layers)
        key = bank_key(
            weights_digest(teacher_dir), encoded, mapping, config.pooling, config.max_length, with_logits=False
        )
        features, _no_logits, build_seconds, reused = obtain_bank(
            teacher,
            encoded,
            mapping,
            config.pooling,
            runtime,
            config.eval_batch_size,
            key,
            cache_dirs=[run_dir, out_dir, *map(Path, cache_from)],
            save_dir=run_dir,
            dist=dist,
            with_logits=False,
        )
        teacher_parameters = count_parameters(teacher)
        held_enc = _subset(encoded, held)
        special = np.asarray(tokenizer.all_special_ids, dtype=np.int64)
        masking = (special, tokenizer.mask_token_id, len(tokenizer), config.mlm_probability)
        teacher_mlm = _mlm_accuracy(teacher, held_enc, masking, runtime, config) if mlm else None

        # ---- 3. student and its objective -----------------------------------------------------------
        student = skip_student(teacher, student_layers)
        if mlm:
            teacher.eval().requires_grad_(False)  # stays for the online MLM-KD term
        else:
            del teacher
            gc.collect()
            teacher = None
        bank = make_teacher_bank(features, _no_logits, torch.zeros(len(encoded)), bank_device(runtime, features.nbytes))
        bank_info = BankInfo.of(bank, key, build_seconds, reused)
        torch.manual_seed(config.seed)  # the heads start the same on every rank
        width = int(teacher_config["hidden_size"])
        distiller = PreDistiller(student, bank, teacher, config, hidden_width(student.config), width)
        distiller = distiller.to(runtime.device)

        def make_batch(global_rows, rows, epoch, batch_no):
            """Masks and random negatives for the whole global batch, from its position: every rank
            (and one process alone) draws the same, and a resumed run draws what it would have."""
            rng = np.random.default_rng([config.seed, epoch, batch_no])
            padded = pad_batch(encoded, global_rows)
            labels = None
            if mlm:
                padded["input_ids"], labels = mask_tokens(padded["input_ids"], padded["attention_mask"], *masking, rng)
            negatives = _negatives(global_rows, n_train, config.negatives, rng)
            part = slice(dist.rank, None, dist.world)
            longest = int(padded["attention_mask"][part].sum(axis=1).max())  # this rank's rows need no more
            inputs = to_device({name: value[part, :longest] for name, value in padded.items()}, runtime)
            targets = host_to(torch.from_numpy(labels[part, :longest]), runtime.device) if mlm else None
            negatives = host_to(torch.from_numpy(negatives[part]), bank.features.device)
            return inputs, torch.from_numpy(rows), targets, negatives

        def evaluate() -> dict[str, float]:
            return _evaluate(distiller, held_enc, held, masking, runtime, config, dist)

        # ---- 4. train -------------------------------------------------------------------------------
        loop = Loop(
            label="compress (pre)",
            config=config,
            bank_key=key,
            lengths=encoded.lengths[:n_train],
            make_batch=make_batch,
            evaluate=evaluate,
            headline="cka",
        )
        initial = evaluate()  # the skip-initialised student, the baseline the epochs improve on
        trained = train_student(loop, distiller, runtime, dist, run_dir, resume, show_progress)

        # ---- 5. the general student -----------------------------------------------------------------
        final = trained.history[-1]
        report = PretrainReport(
            out_dir=out_dir,
            corpus_texts=len(read),
            train_texts=n_train,
            held_out=len(held),
            cka=final["cka"],
            initial_cka=initial["cka"],
            retrieval_top1=final["retrieval_top1"],
            mlm_accuracy=final.get("mlm_accuracy"),
            teacher_mlm_accuracy=teacher_mlm,
            student_layers=student_layers,
            teacher_layers=teacher_layers,
            student_parameters=count_parameters(distiller.student),
            teacher_parameters=teacher_parameters,
            wall_time_s=time.perf_counter() - started,
            train_examples_per_s=n_train * config.epochs / trained.train_seconds if trained.train_seconds else 0.0,
            bank=bank_info,
            resumed_from_step=trained.resumed_from,
            device=runtime.device,
            precision=runtime.precision,
            world_size=dist.world,
            rank=dist.rank,
        )
        if dist.is_main:
            metrics = {
                "stage": "compress",
                "compress_stage": "pre",
                "metric": "cka",
                "dev": {k: v for k, v in final.items() if k not in ("epoch", "step")},
                "initial_dev": initial,
                "teacher_dev": {"mlm_accuracy": teacher_mlm} if mlm else {},
                "history": trained.history,
                "objective": "codir",
                "mlm": mlm,
                "student_init": "skip",
                "layer_map": mapping,
                "student_layers": student_layers,
                "teacher_layers": teacher_layers,
                "student_parameters": report.student_parameters,
                "teacher_parameters": teacher_parameters,
                "corpus": {"files": read.files, "texts": len(read), "duplicates_dropped": read.duplicates},
                "train_examples": n_train,
                "held_out_examples": len(held),
                "wall_time_s": report.wall_time_s,
                "train_seconds": trained.train_seconds,
                "train_examples_per_s": report.train_examples_per_s,
                "bank": asdict(bank_info),
                "resumed_from_step": trained.resumed_from,
                "device": runtime.device,
                "precision": runtime.precision,
                "world_size": dist.world,
                "teacher": str(teacher_dir),
                "data": str(corpus),
                "config": config.to_dict(),
                "provenance": provenance(),
            }
            write_student(out_dir, overwrite, distiller.student, tokenizer, metrics, config, run_dir)
        barrier(dist)
        return report


def _negatives(global_rows: np.ndarray, n_train: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(G, K + G) bank rows per anchor: K uniform draws from the training rows other than the anchor,
    then the whole global batch (the anchor's own column is left out by the loss)."""
    anchors = global_rows.astype(np.int64)
    drawn = rng.integers(0, n_train - 1, size=(len(anchors), k))
    drawn += drawn >= anchors[:, None]  # skip the anchor: uniform over the other n_train - 1 rows
    in_batch = np.broadcast_to(anchors, (len(anchors), len(anchors)))
    return np.concatenate([drawn, in_batch], axis=1)


def _subset(encoded: Encoded, rows: np.ndarray) -> Encoded:
    types = [encoded.token_type_ids[i] for i in rows] if encoded.token_type_ids is not None else None
    return Encoded([encoded.input_ids[i] for i in rows], types, encoded.targets[rows], encoded.pad_id)


def _evaluate(distiller, held_enc: Encoded, held_rows, masking, runtime, config, dist) -> dict[str, float]:
    """Held-out scores, both on sentences the student never trained on.

    cka: linear CKA (Kornblith et al. 2019) between the student's and the teacher's layer summaries,
    no heads involved: 1 when the student's representation is a rotation and scaling of the teacher's.
    retrieval_top1: the share of held-out sentences whose student summary, through the trained heads,
    is closest to the teacher's summary of the same sentence among all held-out ones (chance is
    1 / held-out). It is what L_con trains, measured where it was not trained; against random
    negatives it saturates quickly, which is why CKA is the headline.
    mlm_accuracy: the share of masked held-out tokens the student restores (teachers with an MLM head).
    """
    import torch
    from torch.nn import functional as F

    student = distiller.student
    layers = distiller.layers
    summaries, _ = compute_bank(
        student, held_enc, layers, config.pooling, runtime, config.eval_batch_size, dist, with_logits=False
    )
    heads = distiller.contrastive
    bank = heads.bank
    with torch.inference_mode():
        device = heads.student_head.weight.device
        z_s = F.normalize(heads.student_head(summaries.to(device).float()), dim=-1)  # (H, p)
        teacher = bank.rows(bank.features, torch.as_tensor(held_rows, device=bank.features.device), device)
        z_t = F.normalize(heads.teacher_head(teacher), dim=-1)  # (H, p)
        hits = (z_s @ z_t.T).argmax(dim=1) == torch.arange(len(held_rows), device=device)
        cka = linear_cka(summaries.to(device).float(), teacher)
        metrics = {"cka": cka, "retrieval_top1": float(hits.float().mean())}
    if distiller.mlm:
        metrics["mlm_accuracy"] = _mlm_accuracy(student, held_enc, masking, runtime, config)
    return metrics


def linear_cka(x, y) -> float:
    """Linear CKA of two (n, d_x), (n, d_y) representations of the same n inputs: ||Y^T X||_F^2 over
    ||X^T X||_F ||Y^T Y||_F on centred columns; invariant to rotation and scale, in [0, 1]."""
    import torch

    x = (x - x.mean(dim=0)).double()
    y = (y - y.mean(dim=0)).double()
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    return float(cross / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)).clamp_min(1e-30))


def _mlm_accuracy(model, held_enc: Encoded, masking, runtime, config) -> float:
    """Masked-token accuracy on the held-out slice, with the same masks every epoch (and for the
    teacher), drawn from a generator of their own."""
    import torch

    from codir_edge.distill.pre_objective import mlm_head
    from codir_edge.models.predict import to_device

    rng = np.random.default_rng([config.seed, 0])
    right = total = 0
    model.eval()
    with torch.inference_mode(), runtime.autocast():
        for indices in eval_batches(held_enc.lengths, config.eval_batch_size):
            batch = pad_batch(held_enc, indices)
            batch["input_ids"], labels = mask_tokens(batch["input_ids"], batch["attention_mask"], *masking, rng)
            chosen = labels != IGNORE
            hidden = model.base_model(**to_device(batch, runtime)).last_hidden_state
            chosen_t = torch.from_numpy(chosen).to(hidden.device)
            guess = mlm_head(model)(hidden[chosen_t]).argmax(dim=-1).cpu().numpy()
            right += int((guess == labels[chosen]).sum())
            total += int(chosen.sum())
    return right / max(total, 1)


__all__ = ["PretrainReport", "run_pretrain"]
