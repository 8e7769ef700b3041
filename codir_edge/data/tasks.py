"""The task registry: everything the tool needs to know about a GLUE task, in one declaration each.

Columns are named for files with a header and numbered for those without (CoLA). Label order
follows the original GLUE processors, so a teacher fine-tuned here maps its logits the way the rest
of the ecosystem expects. ``label_names`` are the human names Hugging Face datasets use; readers
accept either form. Two generic tasks, ``classification`` and ``regression``, cover custom data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codir_edge.core.errors import InputError

Column = str | int


@dataclass(frozen=True)
class TaskSpec:
    """A task's files, columns, labels and metrics. ``labels`` is empty for regression and custom tasks."""

    name: str
    folder: str | None
    text_column: Column | None
    text_pair_column: Column | None
    label_column: Column | None
    labels: tuple[str, ...] = ()
    label_names: tuple[str, ...] = ()
    is_regression: bool = False
    metrics: tuple[str, ...] = ("accuracy",)
    has_header: bool = True
    split_files: dict[str, str] = field(default_factory=lambda: {"train": "train.tsv", "dev": "dev.tsv"})

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    @property
    def is_glue(self) -> bool:
        return self.folder is not None

    @property
    def is_pair(self) -> bool:
        return self.text_pair_column is not None


def _glue(
    name: str,
    folder: str,
    text: Column,
    pair: Column | None,
    label: Column,
    labels: tuple[str, ...],
    names: tuple[str, ...] | None = None,
    metrics: tuple[str, ...] = ("accuracy",),
    **kw,
) -> TaskSpec:
    return TaskSpec(name, folder, text, pair, label, labels, names or labels, metrics=metrics, **kw)


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        _glue("sst2", "SST-2", "sentence", None, "label", ("0", "1"), ("negative", "positive")),
        _glue(
            "mrpc",
            "MRPC",
            "#1 String",
            "#2 String",
            "Quality",
            ("0", "1"),
            ("not_equivalent", "equivalent"),
            metrics=("f1", "accuracy"),
        ),
        _glue("rte", "RTE", "sentence1", "sentence2", "label", ("entailment", "not_entailment")),
        # CoLA ships without a header: source, label, original label, sentence.
        _glue(
            "cola",
            "CoLA",
            3,
            None,
            1,
            ("0", "1"),
            ("unacceptable", "acceptable"),
            metrics=("matthews_correlation",),
            has_header=False,
        ),
        TaskSpec(
            "stsb", "STS-B", "sentence1", "sentence2", "score", is_regression=True, metrics=("pearson", "spearman")
        ),
        _glue("qnli", "QNLI", "question", "sentence", "label", ("entailment", "not_entailment")),
        _glue(
            "qqp",
            "QQP",
            "question1",
            "question2",
            "is_duplicate",
            ("0", "1"),
            ("not_duplicate", "duplicate"),
            metrics=("f1", "accuracy"),
        ),
        _glue(
            "mnli",
            "MNLI",
            "sentence1",
            "sentence2",
            "gold_label",
            ("contradiction", "entailment", "neutral"),
            split_files={"train": "train.tsv", "dev": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv"},
        ),
        _glue("wnli", "WNLI", "sentence1", "sentence2", "label", ("0", "1"), ("not_entailment", "entailment")),
        TaskSpec("classification", None, "text", None, "label", metrics=("accuracy", "macro_f1")),
        TaskSpec("regression", None, "text", None, "label", is_regression=True, metrics=("pearson", "spearman")),
    )
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by name, forgivingly (``SST-2``, ``sst2`` and ``STS_B`` all work)."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key in TASKS:
        return TASKS[key]
    known = ", ".join(TASKS)
    raise InputError(f"unknown task '{name}': use one of {known}")
