"""The encoder families a user may bring, one declarative entry each: only what differs between them.

As optimum-onnx declares its model configs apart from the converter, every stage asks this table
instead of testing ``model_type`` itself: compress (where the blocks live, how deep and wide the
model is), export (its inputs, the onnxruntime optimizer's name for it, its opset floor) and profile
(its inputs). ``tokenizer`` is the kind the family ships; the strings-in graph reads the actual
tokenizer, and the chain test holds the two equal. A family in ``FAMILIES`` without a case in
``tests/test_families.py`` fails the suite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codir_edge.core.errors import InputError

WORDPIECE, BYTE_BPE, SENTENCEPIECE = "wordpiece", "byte-level-bpe", "sentencepiece"


@dataclass(frozen=True)
class Family:
    """What one encoder family does its own way.

    ``blocks`` is the dotted path (a regex) before a block's number in the state dict;
    ``shared_blocks`` means every depth reuses the same weights (ALBERT), so a shallower student runs
    fewer passes of the same block: faster, not smaller. ``segments`` says whether the model reads
    ``token_type_ids`` (``"config"``: when ``type_vocab_size`` > 0). ``position_offset`` is true where
    position ids start after the padding index (RoBERTa's scheme), which costs ``pad_token_id + 1``
    positions. ``head`` names the classifier head, for the reader: it is copied as is into a student.
    ``optimizer`` is onnxruntime.transformers' model type, None where its fusions do not apply.
    ``min_opset`` is the lowest ONNX opset export accepts for it (optimum's floor for encoders; no
    family raises it so far, and the tests export at the default, 17).
    """

    model_type: str
    blocks: str
    tokenizer: str
    segments: bool | str = True
    position_offset: bool = False
    head: str = "pooler (dense+tanh on [CLS]) + linear"
    optimizer: str | None = "bert"
    min_opset: int = 14
    depth_key: str = "num_hidden_layers"
    width_key: str = "hidden_size"
    heads_key: str = "num_attention_heads"
    shared_blocks: bool = False
    mlm_head: bool = True
    # width pruning (compress --heads-keep/--ffn-keep): module paths inside one prunable block (``unit``,
    # a regex of its module name; default: a numbered block). ``attn_out`` is the projection that reads
    # the heads side by side (None: transformers cannot store per-layer head counts for the family, so
    # only FFN neurons are pruned); ``ffn_in`` makes the FFN's neurons (``glu``: two halves, value and
    # gate, per neuron), ``ffn_out`` reads them; ``ffn_key`` is the config's FFN width.
    attn_out: str | None = "attention.output.dense"
    ffn_in: str = "intermediate.dense"
    ffn_out: str = "output.dense"
    ffn_key: str = "intermediate_size"
    glu: bool = False
    unit: str | None = None

    def takes_segments(self, config) -> bool:
        if self.segments == "config":
            return int(_get(config, "type_vocab_size", 0) or 0) > 0
        return bool(self.segments)

    def block_key(self) -> re.Pattern:
        """``<prefix><blocks>.<n>.<rest>`` as three groups: prefix with the block path, n, rest."""
        return re.compile(rf"^(.*?(?:^|\.){self.blocks}\.)(\d+)\.(.*)$")

    def unit_name(self) -> re.Pattern:
        """A prunable block's module name (``bert.encoder.layer.3``), in ``named_modules`` order."""
        unit = self.unit or self.blocks + r"\.\d+"
        return re.compile(rf"^(?:.*\.)?{unit}$")


_ROBERTA_HEAD = "dense+tanh on <s> + out_proj"

FAMILIES: dict[str, Family] = {
    f.model_type: f
    for f in (
        Family("bert", r"encoder\.layer", WORDPIECE),
        Family("roberta", r"encoder\.layer", BYTE_BPE, segments=False, position_offset=True, head=_ROBERTA_HEAD),
        Family(
            "xlm-roberta", r"encoder\.layer", SENTENCEPIECE, segments=False, position_offset=True, head=_ROBERTA_HEAD
        ),  # fmt: skip
        Family(
            "camembert", r"encoder\.layer", SENTENCEPIECE, segments=False, position_offset=True, head=_ROBERTA_HEAD
        ),  # fmt: skip
        Family(
            "distilbert",
            r"transformer\.layer",
            WORDPIECE,
            segments=False,
            head="pre_classifier+relu + linear",
            depth_key="n_layers",
            width_key="dim",
            heads_key="n_heads",
            mlm_head=False,
            attn_out="attention.out_lin",
            ffn_in="ffn.lin1",
            ffn_out="ffn.lin2",
            ffn_key="hidden_dim",
        ),  # fmt: skip
        Family("electra", r"encoder\.layer", WORDPIECE, head="dense+gelu on [CLS] + out_proj", mlm_head=False),
        Family(
            "albert", r"albert_layer_groups", SENTENCEPIECE, shared_blocks=True, attn_out="attention.dense",
            ffn_in="ffn", ffn_out="ffn_output", unit=r"albert_layer_groups\.\d+\.albert_layers\.\d+",
        ),  # fmt: skip
        Family(
            "mpnet", r"encoder\.layer", WORDPIECE, segments=False, position_offset=True, head=_ROBERTA_HEAD,
            attn_out=None,  # its prune_heads leaves the relative position bias at every head: outputs break
        ),  # fmt: skip
        # DeBERTa-v3 is saved as deberta-v2; onnxruntime's BERT fusions do not match its disentangled attention
        Family(
            "deberta-v2",
            r"encoder\.layer",
            SENTENCEPIECE,
            segments="config",
            head="context pooler + linear",
            optimizer=None,
            mlm_head=False,
            attn_out=None,
        ),  # fmt: skip
        Family(
            "modernbert",
            r"layers",
            BYTE_BPE,
            segments=False,
            head="mean or [CLS] pool, dense+norm + linear",
            optimizer=None,
            mlm_head=False,
            attn_out=None,
            ffn_in="mlp.Wi",
            ffn_out="mlp.Wo",
            glu=True,
        ),  # fmt: skip
    )
}

# What a user may point us at by mistake, each with why it cannot be a teacher here.
_NOT_ENCODERS = {
    "gpt2": "decoder-only",
    "llama": "decoder-only",
    "mistral": "decoder-only",
    "qwen2": "decoder-only",
    "gpt_neox": "decoder-only",
    "opt": "decoder-only",
    "t5": "sequence-to-sequence",
    "bart": "sequence-to-sequence",
    "mbart": "sequence-to-sequence",
    "marian": "sequence-to-sequence",
    "pegasus": "sequence-to-sequence",
}


def _get(config, key: str, default=None):
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def supported() -> str:
    return ", ".join(FAMILIES)


def family_of(config, where: str = "the model") -> Family:
    """The family of a config (config.json as a dict, or a transformers config), or one line that
    lists the supported ones."""
    model_type = _get(config, "model_type")
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    kind = _NOT_ENCODERS.get(str(model_type), "not a supported encoder family")
    raise InputError(f"{where} is a '{model_type}' model ({kind}): bring an encoder classifier of one of {supported()}")


def depth(config) -> int:
    """The number of blocks a config declares (0 when it declares none)."""
    model_type = _get(config, "model_type")
    key = FAMILIES[model_type].depth_key if model_type in FAMILIES else "num_hidden_layers"
    return int(_get(config, key, 0) or 0)


def width(config) -> int:
    model_type = _get(config, "model_type")
    key = FAMILIES[model_type].width_key if model_type in FAMILIES else "hidden_size"
    return int(_get(config, key, 0) or 0)


def heads(config) -> int:
    model_type = _get(config, "model_type")
    key = FAMILIES[model_type].heads_key if model_type in FAMILIES else "num_attention_heads"
    return int(_get(config, key, 0) or 0)


def kept_heads(config) -> int:
    """Heads per block after pruning (``config.pruned_heads``), which compress keeps equal in every
    block; the fewest where they differ (a checkpoint pruned elsewhere)."""
    pruned = _get(config, "pruned_heads", None) or {}
    total = heads(config)
    if not pruned:
        return total
    return total - max(len(v) for v in pruned.values())


def set_depth(config, layers: int) -> None:
    """Make a transformers config ``layers`` blocks deep."""
    setattr(config, family_of(config).depth_key, layers)


def max_positions(config) -> int:
    """The longest input the position embeddings allow."""
    limit = int(_get(config, "max_position_embeddings", 512) or 512)
    model_type = _get(config, "model_type")
    if model_type in FAMILIES and FAMILIES[model_type].position_offset:
        limit -= int(_get(config, "pad_token_id", 1) or 0) + 1
    return limit


def input_names(config) -> tuple[str, ...]:
    """The inputs a classifier of this config takes, in the order its exported graph lists them."""
    family = family_of(config)
    return ("input_ids", "attention_mask", *(("token_type_ids",) if family.takes_segments(config) else ()))
