"""``--vocab`` inside a compress run: the rows to keep, decided once per run (rank 0, read back on resume),
the student and its tokenizer cut to them before distillation, and the report's figures. The pruning
itself is ``models/vocab.py``; each stage re-encodes its own text with the cut tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from codir_edge.data.encode import Encoded
from codir_edge.models.vocab import VocabPlan, count_tokens, plan_vocab, pruned_model, pruned_tokenizer


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
