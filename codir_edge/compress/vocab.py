"""``--vocab`` inside a compress run: the rows to keep, decided once per run (rank 0, read back on resume),
the student and its tokenizer cut to them before distillation, and the report's figures. The pruning
itself is ``models/vocab.py``; each stage re-encodes its own text with the cut tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from codir_edge.data.encode import Encoded
from codir_edge.models.vocab import (
    VocabPlan,
    backend_json,
    count_tokens,
    fallback_ids,
    plan_vocab,
    pruned_model,
    pruned_tokenizer,
    special_ids,
)


def decided_once(path: Path, dist, decide) -> dict:
    """A decision the run must keep: read back on resume, else made on rank 0, saved and shared."""
    import json

    from codir_edge.core.atomic import atomic_write_text
    from codir_edge.training.distributed import from_main

    if path.is_file():
        return json.loads(path.read_text())
    value = decide() if dist.is_main else None
    value = from_main(value, dist)
    if dist.is_main:
        atomic_write_text(path, json.dumps(value, indent=2))
    return value


def cut_vocabulary(student, tokenizer, train_ids: Sequence, mode: str | int, run_dir: Path, dist):
    """(student, tokenizer, plan) with only the rows ``mode`` keeps of those ``train_ids`` use."""
    rows = student.get_input_embeddings().weight.shape[0]

    def plan() -> dict:
        made = plan_vocab(tokenizer, count_tokens(train_ids), mode, rows)
        return {**made.to_dict(), "keep": list(made.keep)}

    decided = decided_once(run_dir / "vocab_plan.json", dist, plan)
    made = VocabPlan(tuple(decided["keep"]), decided["full_size"], decided["used"], decided["used_kept"],
                     decided["fallback"], decided["special"], decided["mode"])  # fmt: skip
    return pruned_model(student, made.keep), pruned_tokenizer(tokenizer, made.keep), made


def vocab_report(plan: VocabPlan, width: int, before: tuple[Encoded, Encoded], after: tuple[Encoded, Encoded],
                 scored: str = "dev") -> dict:  # fmt: skip
    """The plan's figures, the fp32 bytes the dropped rows held (``width`` wide), and how many training rows
    and ``scored`` texts (dev, held-out) tokenize differently with the kept vocabulary than with the full one
    (no training row under ``--vocab auto``: every piece they use is kept)."""
    mapping = plan.id_map()

    def differ(full: Encoded, cut: Encoded) -> int:
        return sum(len(a) != len(b) or any(mapping[int(i)] != int(j) for i, j in zip(a, b, strict=True))
                   for a, b in zip(full.input_ids, cut.input_ids, strict=True))  # fmt: skip

    return plan.to_dict() | {
        "embedding_bytes_saved_fp32": (plan.full_size - len(plan.keep)) * width * 4,
        "train_rows_retokenized": differ(before[0], after[0]),
        "dev_texts_retokenized": differ(before[1], after[1]),
        "dev_texts": len(after[1]),
        "scored_on": scored,
    }


def resplit_keep(tokenizer, plan: VocabPlan, counts: dict[int, int]) -> list[int]:
    """The kept rows less the rarer half of the tokens the training text uses (by ``counts``, full-vocabulary
    ids; special tokens and the single-character and byte fallback stay): the words that unseen text is
    likeliest to bring new ones like are rare ones, so under this vocabulary the training text splits where
    such text splits under the kept one."""
    data = backend_json(tokenizer)
    fixed = special_ids(data) | set(getattr(tokenizer, "added_tokens_decoder", {})) | fallback_ids(data)
    droppable = sorted((counts.get(i, 0), i) for i in plan.keep if i not in fixed)
    dropped = {i for _count, i in droppable[: len(droppable) // 2]}
    return [i for i in plan.keep if i not in dropped]


def resplit(tokenizer, plan: VocabPlan, kept: Encoded, encode_with, rate: float, seed: int) -> tuple[Encoded, int]:
    """(``kept`` with a seeded ``rate`` share of its rows as ``resplit_keep``'s vocabulary splits them, how many
    rows changed): ``--vocab-resplit``. Under ``--vocab auto`` the training text never splits a word that the
    pruning dropped, yet unseen text will; the teacher's targets stay those of the whole words, so the student
    learns to read the pieces as the words they stand for. ``tokenizer`` is the full one, ``encode_with(tok)``
    encodes the training rows in ``kept``'s order; ids are mapped back into the kept vocabulary."""
    import numpy as np

    counts = {plan.keep[i]: n for i, n in count_tokens(kept.input_ids).items()}
    thin = resplit_keep(tokenizer, plan, counts)
    split = encode_with(pruned_tokenizer(tokenizer, thin))
    to_kept = np.asarray(plan.id_map(), dtype=np.int64)[np.asarray(thin, dtype=np.int64)]
    chosen = np.random.default_rng(seed).random(len(kept)) < rate
    ids, changed = list(kept.input_ids), 0
    types = list(kept.token_type_ids) if kept.token_type_ids is not None else None
    for row in np.flatnonzero(chosen):
        mapped = to_kept[split.input_ids[row]]
        changed += len(mapped) != len(ids[row]) or bool((mapped != ids[row]).any())
        ids[row] = mapped
        if types is not None:
            types[row] = split.token_type_ids[row]
    return Encoded(ids, types, kept.targets, kept.pad_id), changed
