"""The data options every command with ``--data`` shares, declared once (``core/settings.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from codir_edge.core.settings import DATA, labels_list, setting
from codir_edge.data import DataSpec

TASK_HELP = (
    "GLUE task (sst2, mrpc, rte, cola, stsb, qnli, qqp, mnli, wnli) or 'classification' / 'regression' for custom "
    "data. 'embedding': a sentence-embedding model, scored on STS pairs (sentence1, sentence2, score: Spearman and "
    "Pearson of cosine) or labelled texts (logistic regression and 1-NN on the embeddings, fit on train). 'ner' "
    "(or 'token-classification'): a token classifier on word-tagged CoNLL or jsonl files, scored by entity F1."
)
DATA_HELP = (
    "A GLUE folder (task folder or the glue root), a .tsv/.csv/.jsonl file, a save_to_disk folder, or "
    "hf:NAME[:CONFIG]."
)


@dataclass(frozen=True, kw_only=True)
class ColumnOptions:
    """Where the text and the label are in the user's files."""

    text_column: str | None = setting(
        None, help="Column (or JSON field) holding the text; a number for headerless files.", panel=DATA
    )
    text_pair_column: str | None = setting(None, help="Column holding the second text of pair tasks.", panel=DATA)
    label_column: str | None = setting(None, help="Column holding the label or regression target.", panel=DATA)


@dataclass(frozen=True, kw_only=True)
class TrainDataOptions(ColumnOptions):
    """A training command's data: a dev file beside a single training file, and the label order."""

    eval_data: str | None = setting(None, help="Dev data when --data is a single file (same formats).", panel=DATA)
    labels: tuple[str, ...] | None = setting(
        None,
        help="Comma-separated label order for custom classification data (default: sorted labels of the train "
        "split).",
        panel=DATA,
        cli_type=str | None,
        parse=labels_list,
    )


def data_spec(args, data: str | None = None) -> DataSpec:
    """``--data`` (or ``data``) with the column options of ``args``."""
    labels = getattr(args, "labels", None) if "labels" in args.values else None
    return DataSpec(
        data if data is not None else args.data, args.text_column, args.text_pair_column, args.label_column, labels
    )


def train_data_specs(args) -> tuple[DataSpec, DataSpec | None]:
    """``--data`` and ``--eval-data`` of a training command, sharing the column options."""
    return data_spec(args), data_spec(args, args.eval_data) if args.eval_data else None
