"""What ``codir-edge compress`` takes: the settings of both CoDIR stages' configs and the command's own
inputs, in the order its help lists them. The CLI and the pipeline both read this declaration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.compress.config import STAGES, EmbedConfig, FineConfig, PreConfig, TokenConfig
from codir_edge.core.command_options import OutputOptions, ResumeOption
from codir_edge.core.settings import CHECKPOINTS, DATA, CommandSpec, setting
from codir_edge.data.options import TrainDataOptions


@dataclass(frozen=True, kw_only=True)
class CompressInputs(OutputOptions, ResumeOption, TrainDataOptions):
    teacher: Path = setting(
        help="--stage fine: a fine-tuned encoder classifier (a finetune output, or a folder or hub id of bert, "
        "roberta, xlm-roberta, camembert, distilbert, electra, albert, mpnet, deberta-v2, modernbert). --stage "
        "pre: a pretrained backbone (a BertModel folder such as all-MiniLM-L6-v2, or a masked-LM checkpoint).",
        flags=("--teacher",),
    )
    data: str = setting(
        help="--stage fine: the task's data (a GLUE folder or the glue root, a .tsv/.csv/.jsonl file, a "
        "save_to_disk folder, or hf:NAME[:CONFIG]). --stage pre: unlabelled text (a .txt file with one text "
        "per line, a .jsonl with a text field, or a GLUE task folder or the glue root, labels ignored).",
        flags=("--data", "-d"),
        panel=DATA,
    )
    stage: str = setting(
        "fine",
        help="fine: CoDIR-Fine, distil a fine-tuned classifier on its labelled task. pre: CoDIR-Pre, distil a "
        "pretrained backbone on unlabelled text into a general student (then --stage fine --student it).",
        choices=STAGES,
    )
    student: Path | None = setting(
        None, help="Start from this pretrained smaller model instead of skip initialisation (same tokenizer)."
    )
    cache_from: list[Path] | None = setting(
        None,
        help="An earlier compress output whose cached teacher bank may be reused (used only if its key matches).",
        panel=CHECKPOINTS,
    )


COMPRESS = CommandSpec(
    (CompressInputs, FineConfig, PreConfig, EmbedConfig, TokenConfig),
    order=(
        "teacher", "data", "out", "stage", "task", "student_layers", "student", "heads_keep", "ffn_keep",
        "importance_samples", "latency_budget", "budget_threads", "budget_seq_len", "budget_device", "devices",
        "objective", "pooling", "contrastive", "negatives", "token_negatives", "pkd_tokens", "contrastive_temperature",
        "projection_dim", "contrastive_weight", "kd_temperature", "kd_weight", "mse_weight", "negative_margin",
        "normalize",
        "mlm_probability", "held_out", "unlabeled", "unlabeled_per_epoch", "labeled_repeat", "augment", "epochs", "lr",
        "batch_size", "max_length", "max_train_samples", "max_eval_samples", "seed", "device", "precision", "resume",
        "checkpoint_every", "cache_from", "eval_data", "text_column", "text_pair_column", "label_column", "labels",
        "overwrite", "json_path", "quiet", "trust_remote_code",
    ),
)  # fmt: skip
# Command inputs that CoDIR-Pre does not read (it takes unlabelled text, no labels and no student folder).
FINE_INPUTS = ("student", "eval_data", "text_pair_column", "label_column", "labels")
