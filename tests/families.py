"""Tiny random classifiers of every encoder family, saved as transformers saves a user's checkpoint.

Each comes with a tokenizer of its family's kind trained in code on real SST-2 sentences (WordPiece,
byte-level BPE or SentencePiece-style Unigram, a second or less), so the whole chain runs on real
tokenization with vocabularies far smaller than the 30,522 of BERT's.
"""

from __future__ import annotations

from pathlib import Path

HIDDEN, HEADS, LAYERS, MAX_POSITIONS = 32, 2, 4, 128


def _sentences(glue_dir: Path, count: int = 3000) -> list[str]:
    lines = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1 : count + 1]
    return [line.split("\t")[0] for line in lines]


def _wordpiece(sentences, lowercase: bool, special: dict):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token=special["unk"]))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    order = [special[k] for k in ("pad", "unk", "cls", "sep", "mask")]
    tok.train_from_iterator(sentences, trainers.WordPieceTrainer(vocab_size=1200, special_tokens=order))
    cls, sep = special["cls"], special["sep"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece()
    return tok


def _byte_bpe(sentences):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(sentences, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    return tok


def _spm_normalizer(family: str):
    """The normalizer transformers' converter gives the family (convert_slow_tokenizer.py), NFKC standing
    in for the Precompiled nmt_nfkc map of a real sentencepiece model, which cannot be built here."""
    from tokenizers import Regex, normalizers

    if family in ("xlm-roberta", "camembert"):  # SpmConverter
        steps = [
            normalizers.NFKC(),
            normalizers.Strip(left=False, right=True),
            normalizers.Replace(Regex(" {2,}"), "▁"),
        ]
    elif family == "albert":  # AlbertConverter, do_lower_case and no accents kept
        steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"'), normalizers.NFKD(),
                 normalizers.StripAccents(), normalizers.Lowercase(), normalizers.Nmt(),
                 normalizers.Replace(Regex(" {2,}"), " ")]  # fmt: skip
    else:  # DebertaV2Converter
        steps = [normalizers.Strip(), normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    return normalizers.Sequence(steps)


def _unigram(sentences, family: str, special: list[str], cls: str, sep: str, roberta_pairs: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = _spm_normalizer(family)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    unk = next(s for s in special if "unk" in s.lower())
    tok.train_from_iterator(sentences, trainers.UnigramTrainer(vocab_size=1000, special_tokens=special, unk_token=unk))
    ids = [(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))]
    pair = f"{cls} $A {sep} {sep} $B {sep}" if roberta_pairs else f"{cls} $A {sep} $B:1 {sep}:1"
    tok.post_processor = processors.TemplateProcessing(single=f"{cls} $A {sep}", pair=pair, special_tokens=ids)
    return tok


BERT_SPECIAL = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
MPNET_SPECIAL = {"pad": "<pad>", "unk": "[UNK]", "cls": "<s>", "sep": "</s>", "mask": "<mask>"}
XLMR_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def build_tokenizer(family: str, sentences: list[str]):
    """The fast tokenizer of the family's kind, as its ``*TokenizerFast`` class saves it."""
    import transformers as t

    if family in ("bert", "electra", "distilbert"):
        cls = {"bert": t.BertTokenizerFast, "electra": t.ElectraTokenizerFast, "distilbert": t.DistilBertTokenizerFast}
        return cls[family](tokenizer_object=_wordpiece(sentences, True, BERT_SPECIAL), **_kw(BERT_SPECIAL))
    if family == "mpnet":
        tok = _wordpiece(sentences, True, MPNET_SPECIAL)
        return t.MPNetTokenizerFast(tokenizer_object=tok, **_kw(MPNET_SPECIAL), bos_token="<s>", eos_token="</s>")
    if family in ("roberta", "modernbert"):
        special = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", cls_token="<s>",
                       pad_token="<pad>", mask_token="<mask>")  # fmt: skip
        if family == "roberta":
            return t.RobertaTokenizerFast(tokenizer_object=_byte_bpe(sentences), **special)
        # as answerdotai/ModernBERT-base's tokenizer_config.json says: the model takes no token type ids
        return t.PreTrainedTokenizerFast(tokenizer_object=_byte_bpe(sentences), **special,
                                         model_input_names=["input_ids", "attention_mask"])  # fmt: skip
    if family in ("xlm-roberta", "camembert"):
        special = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", cls_token="<s>",
                       pad_token="<pad>", mask_token="<mask>")  # fmt: skip
        cls = t.XLMRobertaTokenizerFast if family == "xlm-roberta" else t.CamembertTokenizerFast
        return cls(tokenizer_object=_unigram(sentences, family, XLMR_SPECIAL, "<s>", "</s>", True), **special)
    if family in ("albert", "deberta-v2"):
        order = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        cls = t.AlbertTokenizerFast if family == "albert" else t.DebertaV2TokenizerFast
        tok = _unigram(sentences, family, order, "[CLS]", "[SEP]", False)
        return cls(tokenizer_object=tok, **_kw(BERT_SPECIAL))
    raise KeyError(family)


def _kw(special: dict) -> dict:
    return {f"{k}_token": v for k, v in special.items()}


def build_config(family: str, tokenizer, num_labels: int):
    """A tiny config of the family, sized to the tokenizer's vocabulary and special ids."""
    import transformers as t

    common = dict(vocab_size=len(tokenizer), num_labels=num_labels, pad_token_id=tokenizer.pad_token_id)
    bert_like = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                     intermediate_size=2 * HIDDEN, max_position_embeddings=MAX_POSITIONS)  # fmt: skip
    ends = dict(bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    if family == "bert":
        return t.BertConfig(**common, **bert_like)
    if family == "electra":
        return t.ElectraConfig(**common, **bert_like, embedding_size=16)
    if family == "distilbert":
        return t.DistilBertConfig(**common, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=2 * HIDDEN,
                                  max_position_embeddings=MAX_POSITIONS)  # fmt: skip
    if family == "albert":
        return t.AlbertConfig(**common, **bert_like, embedding_size=16)
    if family == "mpnet":
        return t.MPNetConfig(**common, **ends, **bert_like | {"max_position_embeddings": MAX_POSITIONS + 2})
    if family in ("roberta", "xlm-roberta", "camembert"):
        cls = {"roberta": t.RobertaConfig, "xlm-roberta": t.XLMRobertaConfig, "camembert": t.CamembertConfig}[family]
        return cls(**common, **ends, **bert_like | {"max_position_embeddings": MAX_POSITIONS + 2}, type_vocab_size=1)
    if family == "deberta-v2":  # shaped like DeBERTa-v3: relative attention, no absolute positions, no segments
        return t.DebertaV2Config(**common, **bert_like, relative_attention=True, position_buckets=32,
                                 max_relative_positions=-1, pos_att_type=["p2c", "c2p"], position_biased_input=False,
                                 norm_rel_ebd="layer_norm", share_att_key=True, type_vocab_size=0)  # fmt: skip
    if family == "modernbert":
        return t.ModernBertConfig(**common, **ends, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                  num_attention_heads=HEADS, intermediate_size=2 * HIDDEN,
                                  max_position_embeddings=MAX_POSITIONS, global_attn_every_n_layers=2,
                                  local_attention=16, cls_token_id=tokenizer.cls_token_id,
                                  sep_token_id=tokenizer.sep_token_id)  # fmt: skip
    raise KeyError(family)


def build_family_classifier(family: str, folder: Path, glue_dir: Path, num_labels: int = 2, seed: int = 0) -> Path:
    """A random ``family`` classifier with default label names (no ``id2label`` of its own, as
    transformers saves a 2-label model), saved with ``save_pretrained`` beside its tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification

    tokenizer = build_tokenizer(family, _sentences(glue_dir))
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(build_config(family, tokenizer, num_labels))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


# --- checkpoints shaped like the hub's base ones -----------------------------------------------------
# The family's config class at its base checkpoint's values (transformers' own defaults where those are
# the base model; ALBERT's and DeBERTa-v2's defaults are their xxlarge and xlarge models), with few
# layers, and a tokenizer made by the family's own transformers class from vocabulary files, so every
# flag (added tokens' normalized/lstrip, the converted SentencePiece normalizer) is the one it writes.
BASE_CONFIGS: dict[str, dict] = {
    "roberta": {"max_position_embeddings": 514, "type_vocab_size": 1},
    "xlm-roberta": {"max_position_embeddings": 514, "type_vocab_size": 1},
    "camembert": {"max_position_embeddings": 514, "type_vocab_size": 1},
    "albert": {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072},  # albert-base-v2
    "deberta-v2": {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,  # deberta-v3-base
                   "relative_attention": True, "position_buckets": 256, "max_relative_positions": -1,
                   "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm", "share_att_key": True,
                   "position_biased_input": False, "type_vocab_size": 0},  # fmt: skip
}
WORDPIECE_VOCAB = 6000  # the bundled MiniLM vocabulary's first entries: specials, characters, common words


def _wordpiece_vocab(backbone_dir: Path, folder: Path, family: str) -> Path:
    lines = (backbone_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()[:WORDPIECE_VOCAB]
    if family == "mpnet":  # mpnet-base's vocab.txt: its own specials first (pad id 1), then BERT's
        lines = ["<s>", "<pad>", "</s>", "<unk>", *lines]
    path = folder / "vocab.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _bpe_files(sentences: list[str], folder: Path) -> tuple[Path, Path]:
    from tokenizers import ByteLevelBPETokenizer

    trained = ByteLevelBPETokenizer()
    trained.train_from_iterator(sentences, vocab_size=1000, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    trained.save_model(str(folder))
    return folder / "vocab.json", folder / "merges.txt"


def _sentencepiece_model(sentences: list[str], folder: Path, family: str) -> Path:
    import sentencepiece as spm

    # the layouts of the real models: fairseq's (<unk> <s> </s>, no pad) for XLM-R and CamemBERT, whose
    # classes add their own specials around it; [PAD] [UNK] first for ALBERT and DeBERTa-v3
    ids = dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1) if family in ("xlm-roberta", "camembert") else \
        dict(pad_id=0, unk_id=1, bos_id=2, eos_id=3)  # fmt: skip
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_prefix=str(folder / "sp"), vocab_size=1000,
                                   model_type="unigram", character_coverage=1.0, minloglevel=2, **ids)  # fmt: skip
    return folder / "sp.model"


def build_base_tokenizer(family: str, sentences: list[str], backbone_dir: Path, work: Path):
    """The family's tokenizer as its own transformers class builds it from vocabulary files."""
    import transformers as t

    wordpiece = {"bert": t.BertTokenizerFast, "electra": t.ElectraTokenizerFast,
                 "distilbert": t.DistilBertTokenizerFast, "mpnet": t.MPNetTokenizerFast}  # fmt: skip
    spm_classes = {"xlm-roberta": t.XLMRobertaTokenizerFast, "camembert": t.CamembertTokenizerFast,
                   "albert": t.AlbertTokenizerFast, "deberta-v2": t.DebertaV2TokenizerFast}  # fmt: skip
    if family in wordpiece:
        return wordpiece[family](vocab_file=str(_wordpiece_vocab(backbone_dir, work, family)))
    if family == "roberta":
        vocab, merges = _bpe_files(sentences, work)
        return t.RobertaTokenizerFast(vocab_file=str(vocab), merges_file=str(merges))
    if family in spm_classes:
        return spm_classes[family](vocab_file=str(_sentencepiece_model(sentences, work, family)))
    if family == "modernbert":  # ModernBERT ships a tokenizer.json read by PreTrainedTokenizerFast
        return build_tokenizer(family, sentences)
    raise KeyError(family)


def build_base_classifier(family: str, folder: Path, glue_dir: Path, backbone_dir: Path, layers: int = 2) -> Path:
    """A random ``family`` classifier at its base checkpoint's configuration, ``layers`` deep, saved
    with ``save_pretrained`` beside the tokenizer its own class made."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    work = folder.parent / f"{folder.name}-vocab"
    work.mkdir(parents=True)
    tokenizer = build_base_tokenizer(family, _sentences(glue_dir), backbone_dir, work)
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if family not in ("bert", "electra", "distilbert", "albert", "deberta-v2"):
        ids |= {"bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id}
    if family == "modernbert":
        ids |= {"cls_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id}
    depth = "n_layers" if family == "distilbert" else "num_hidden_layers"
    config = AutoConfig.for_model(family, vocab_size=len(tokenizer), num_labels=2, **{depth: layers}, **ids,
                                  **BASE_CONFIGS.get(family, {}))  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
