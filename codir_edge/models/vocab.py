"""Vocabulary pruning (``compress --vocab``): a student that ships only the token rows its task uses.

Two thirds of a 3-layer MiniLM student in INT8 is its 30,522-row embedding table, and an app's
classifier reads a fraction of those tokens. The kept rows are:

- every token the training text (labelled, transfer set) is tokenized into: the training text then
  tokenizes exactly as before, because WordPiece's longest match, BPE's merges (their closure is kept)
  and Unigram's best segmentation all still find the pieces they found with the full vocabulary;
- the special and added tokens;
- fallback pieces, so that any text still tokenizes with no more unknown tokens than before: every
  single character (WordPiece: with and without its ``##`` prefix; BPE: with its prefix or suffix, which
  for byte-level BPE are the 256 byte symbols), and byte-fallback tokens (``<0x00>``...) where the model
  has them.

``--vocab N`` keeps the most frequent used tokens on top of those, up to N rows: text then tokenizes
into more, shorter pieces where a dropped token used to be.

Everything is rewritten consistently as a plain transformers checkpoint (no custom code to load it):
the embedding rows, ``config.json``'s ``vocab_size`` and token ids, and the tokenizer (``tokenizer.json``'s
vocabulary, merges, special-token ids in its post-processor and padding; ids made contiguous in their old
order, so a lower id stays lower). Slow-tokenizer files are not carried over: a SentencePiece ``.model``
cannot be rewritten to match, and transformers loads the fast tokenizer from ``tokenizer.json`` alone.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.models.hf_imports import prepare_transformers

MODEL_KINDS = ("WordPiece", "BPE", "Unigram")


@dataclass(frozen=True)
class VocabPlan:
    """The rows a pruned student keeps: ``keep`` holds the full vocabulary's ids, ascending, and a kept
    token's new id is its position there."""

    keep: tuple[int, ...]
    full_size: int
    used: int  # distinct ids the training text is tokenized into
    used_kept: int  # how many of those are kept (all of them under auto)
    fallback: int  # single characters and bytes kept so that any text still tokenizes
    special: int  # special and added tokens
    mode: str  # "auto" or the row budget asked for

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "keep"} | {"kept": len(self.keep)}

    def id_map(self) -> list[int]:
        """The new id of every full-vocabulary id, -1 where the row was dropped."""
        mapping = [-1] * self.full_size
        for new, old in enumerate(self.keep):
            mapping[old] = new
        return mapping


def parse_vocab(value: str | int) -> str | int:
    """``--vocab``: full (no pruning), auto (every token the training text uses) or a row budget."""
    if isinstance(value, int) or str(value).strip().isdigit():
        rows = int(value)
        if rows <= 0:
            raise InputError(f"--vocab must be full, auto or a positive row count, got {value}")
        return rows
    if value in ("full", "auto"):
        return value
    raise InputError(f"--vocab must be full, auto or a row count (e.g. 8000), got {value!r}")


def backend_json(tokenizer) -> dict:
    """The fast tokenizer's ``tokenizer.json`` as a dict; a model kind we cannot prune is an input error."""
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    kind = data["model"]["type"]
    if kind not in MODEL_KINDS:
        raise InputError(f"--vocab cannot prune a {kind} tokenizer (WordPiece, BPE and Unigram only): use --vocab full")
    return data


def token_of_id(model: dict) -> dict[int, str]:
    if model["type"] == "Unigram":
        return {i: piece for i, (piece, _score) in enumerate(model["vocab"])}
    return {i: token for token, i in model["vocab"].items()}


def fallback_ids(data: dict) -> set[int]:
    """Ids of the pieces any text can fall back to (see the module docstring)."""
    model = data["model"]
    ids = {token: i for i, token in token_of_id(model).items()}
    prefix = model.get("continuing_subword_prefix") or ("##" if model["type"] == "WordPiece" else "")
    suffix = model.get("end_of_word_suffix") or ""
    chars = {token for token in ids if len(token) == 1}
    forms = chars | {prefix + c for c in chars} | {c + suffix for c in chars}
    if prefix:  # characters known only in their continuing form
        forms |= {t for t in ids if t.startswith(prefix) and len(t) == len(prefix) + 1}
    if model.get("byte_fallback"):
        forms |= {f"<0x{b:02X}>" for b in range(256)}
    return {ids[token] for token in forms if token in ids}


def special_ids(data: dict) -> set[int]:
    model, found = data["model"], {token["id"] for token in data.get("added_tokens", [])}
    if model["type"] == "Unigram" and model.get("unk_id") is not None:
        found.add(model["unk_id"])
    elif model.get("unk_token") is not None and model["unk_token"] in model["vocab"]:
        found.add(model["vocab"][model["unk_token"]])
    return found


def merge_pair(merge) -> tuple[str, str]:
    return tuple(merge.split(" ", 1)) if isinstance(merge, str) else (merge[0], merge[1])


def merged(model: dict, left: str, right: str) -> str:
    prefix = model.get("continuing_subword_prefix") or ""
    return left + (right[len(prefix) :] if prefix and right.startswith(prefix) else right)


def merge_makers(model: dict) -> dict[str, list[tuple[str, str]]]:
    """Each BPE token -> the merges that make it."""
    makers: dict[str, list[tuple[str, str]]] = {}
    for merge in model.get("merges", []):
        left, right = merge_pair(merge)
        makers.setdefault(merged(model, left, right), []).append((left, right))
    return makers


def merge_closure(model: dict, keep: set[str], makers: dict | None = None) -> set[str]:
    """BPE builds a token from the two parts of its merge: keep every part of every merge that makes a
    kept token, so the merges that tokenized the training text all survive."""
    makers = merge_makers(model) if makers is None else makers
    todo, closed = list(keep), set(keep)
    while todo:
        for pair in makers.get(todo.pop(), ()):
            for part in pair:
                if part not in closed and part in model["vocab"]:
                    closed.add(part)
                    todo.append(part)
    return closed


def plan_vocab(tokenizer, token_counts: Counter, mode: str | int, full_size: int | None = None) -> VocabPlan:
    """Which rows to keep, from how often the training text uses each id (``token_counts``)."""
    data = backend_json(tokenizer)
    model = data["model"]
    size = full_size or len(tokenizer)
    # added tokens as transformers lists them too: one it would re-add at load needs its row
    special = special_ids(data) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    fallback = fallback_ids(data)
    keep = special | fallback
    if isinstance(mode, int) and mode < len(keep):
        raise InputError(f"--vocab {mode} is below the {len(keep)} special and single-character rows every "
                         f"text may need: use at least {len(keep)}, or auto")  # fmt: skip
    names = token_of_id(model)
    makers = merge_makers(model) if model["type"] == "BPE" else {}
    ranked = [i for i, _ in sorted(token_counts.items(), key=lambda item: (-item[1], item[0]))]
    for token in ranked:  # most used first; a BPE token brings the parts of its merges
        adds = {token} - keep
        if makers and token in names and adds:
            adds = {model["vocab"][t] for t in merge_closure(model, {names[token]}, makers)} - keep
        if isinstance(mode, int) and len(keep) + len(adds) > mode:
            continue  # too dear with its parts; a cheaper, rarer token may still fit
        keep |= adds
    if max(keep) >= size:
        raise InputError(f"the tokenizer gives id {max(keep)} but the model has {size} embedding rows: "
                         "re-save the model with its own tokenizer")  # fmt: skip
    return VocabPlan(tuple(sorted(keep)), size, len(token_counts), len(keep & set(token_counts)),
                     len(fallback - special), len(special), str(mode))  # fmt: skip


def count_tokens(id_lists: Iterable[Sequence[int]]) -> Counter:
    counts: Counter = Counter()
    for ids in id_lists:
        counts.update(int(i) for i in ids)
    return counts


def _remap_processor(processor: dict | None, new_id: dict[int, int]) -> None:
    if not processor:
        return
    kind = processor.get("type")
    if kind == "Sequence":
        for step in processor.get("processors", []):
            _remap_processor(step, new_id)
    elif kind == "TemplateProcessing":
        for token in processor.get("special_tokens", {}).values():
            token["ids"] = [new_id[i] for i in token["ids"]]
    elif kind in ("RobertaProcessing", "BertProcessing"):
        for name in ("sep", "cls"):
            processor[name] = [processor[name][0], new_id[processor[name][1]]]


def prune_tokenizer_json(data: dict, keep: Sequence[int]) -> dict:
    """``tokenizer.json`` (as a dict, changed in place and returned) with only ``keep``'s ids, renumbered."""
    new_id = {old: new for new, old in enumerate(keep)}
    model = data["model"]
    names = token_of_id(model)
    if model["type"] == "Unigram":
        model["vocab"] = [model["vocab"][old] for old in keep if old in names]
        if model.get("unk_id") is not None:
            model["unk_id"] = new_id[model["unk_id"]]
    else:
        model["vocab"] = {names[old]: new_id[old] for old in keep if old in names}
    if model["type"] == "BPE":
        vocab = model["vocab"]
        model["merges"] = [m for m in model.get("merges", [])
                           if all(t in vocab for t in (*merge_pair(m), merged(model, *merge_pair(m))))]  # fmt: skip
    for token in data.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    _remap_processor(data.get("post_processor"), new_id)
    if data.get("padding") and data["padding"].get("pad_id") is not None:
        data["padding"]["pad_id"] = new_id.get(data["padding"]["pad_id"], 0)
    return data


def pruned_tokenizer(tokenizer, keep: Sequence[int]):
    """The same transformers tokenizer class over the pruned vocabulary, as ``from_pretrained`` loads it
    from a folder with only ``tokenizer.json`` and its configuration files."""
    prepare_transformers()
    from transformers import AutoTokenizer

    new_id = {old: new for new, old in enumerate(keep)}
    with tempfile.TemporaryDirectory(prefix="codir-vocab-") as tmp:
        folder = Path(tmp)
        tokenizer.save_pretrained(folder)
        slow_files = set(getattr(tokenizer, "vocab_files_names", {}).values()) - {"tokenizer.json"}
        for name in slow_files:
            (folder / name).unlink(missing_ok=True)
        (folder / "tokenizer.json").write_text(
            json.dumps(prune_tokenizer_json(backend_json(tokenizer), keep), ensure_ascii=False), encoding="utf-8"
        )
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if "added_tokens_decoder" in config:  # keyed by id
            config["added_tokens_decoder"] = {str(new_id[int(k)]): v for k, v in config["added_tokens_decoder"].items()}
        config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
        pruned = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    pruned.vocab_file = None  # nothing slow to save: save_pretrained writes tokenizer.json and its configs
    return pruned


def _token_id_fields(config) -> list[str]:
    return [name for name, value in config.to_dict().items() if name.endswith("_token_id") and isinstance(value, int)]


def pruned_model(model, keep: Sequence[int]):
    """A new model of the same class whose input embedding (and any output layer over the vocabulary)
    holds only ``keep``'s rows, with ``config.vocab_size`` and the config's token ids renumbered; built
    from the config, as ``from_pretrained`` builds it, so every module reads the new ids (RoBERTa's
    position ids start after the padding id)."""
    import copy

    import torch

    new_id = {old: new for new, old in enumerate(keep)}
    rows = torch.as_tensor(list(keep), dtype=torch.long)
    full = model.get_input_embeddings().weight.shape[0]
    vocab_sized = {id(model.get_input_embeddings().weight)}
    output = model.get_output_embeddings()
    if output is not None:
        vocab_sized |= {id(output.weight)} | ({id(output.bias)} if getattr(output, "bias", None) is not None else set())
    config = copy.deepcopy(model.config)
    config.vocab_size = len(keep)
    for name in _token_id_fields(config):
        old = getattr(config, name)
        if 0 <= old < full:
            if old not in new_id:
                raise InputError(f"config.json's {name} ({old}) is not a token the tokenizer keeps: "
                                 "re-save the model with its own tokenizer")  # fmt: skip
            setattr(config, name, new_id[old])
    params = {name: p for name, p in model.named_parameters()}
    state = {}
    for name, value in model.state_dict().items():
        source = params.get(name)
        state[name] = value[rows].clone() if source is not None and id(source) in vocab_sized else value
    with torch.random.fork_rng(devices=[]):  # its throw-away initialisation leaves dropout's generator alone
        student = type(model)(config)
    student.load_state_dict(state, strict=True)
    return student.to(dtype=next(model.parameters()).dtype).train(model.training)
