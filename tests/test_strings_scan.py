"""The strings-in graph's scan of every code point (export/strings/rules.py): asked in batches where
the normalizer acts on each character alone, it must give exactly what asking one code point at a
time gives, for every normalizer a WordPiece tokenizer may carry."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# what the batches could get wrong: accents and combining marks (decomposition reorders them), CJK
# (padded with spaces), whitespace and controls, fullwidth forms (｜ becomes the batches' separator
# under NFKD), final sigma, ligatures, Hangul syllables, emoji and the last planes
TRICKY = [
    *range(0x00, 0x250), *range(0x300, 0x370), *range(0x390, 0x3D0), *range(0x1100, 0x1110), *range(0x2000, 0x2070),
    *range(0x3000, 0x3010), *range(0x4E00, 0x4E20), *range(0xAC00, 0xAC10), *range(0xFB00, 0xFB08),
    *range(0xFF00, 0xFF70), 0x1F600, 0x1F1E6, 0xE0001, 0x10FFFF,
]  # fmt: skip


def _normalizers():
    from tokenizers import normalizers

    return {
        "bert-uncased": normalizers.BertNormalizer(lowercase=True),
        "bert-cased": normalizers.BertNormalizer(lowercase=False, strip_accents=False),
        "bert-no-chinese": normalizers.BertNormalizer(handle_chinese_chars=False, strip_accents=True),
        "nfkd-lower-strip": normalizers.Sequence(
            [normalizers.NFKD(), normalizers.Lowercase(), normalizers.StripAccents()]
        ),
        "nfd": normalizers.NFD(),
    }


@pytest.mark.parametrize("name", list(_normalizers()))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.lists(st.integers(0, 0x10FFFF).filter(lambda cp: not 0xD800 <= cp <= 0xDFFF), max_size=300))
def test_batches_give_what_one_code_point_at_a_time_gives(name, extra, monkeypatch):
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers

    from codir_edge.export.strings import rules

    monkeypatch.setattr(rules, "_BATCH", 97)  # many batches, and the separator's fallback within one
    tokenizer = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tokenizer.normalizer = _normalizers()[name]
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    normalize = tokenizer.normalizer.normalize_str
    assert rules.acts_per_character(json.loads(tokenizer.to_str())["normalizer"], normalize)
    points = sorted(set(TRICKY) | set(extra))
    batched = rules.scan_batched(normalize, tokenizer.pre_tokenizer, points)
    assert batched == rules.scan_each(normalize, tokenizer.pre_tokenizer, points)
    assert batched["removed"] or batched["isolated"]  # (the scan found something to agree on)


def test_normalizers_that_look_across_characters_are_asked_one_code_point_at_a_time():
    from tokenizers import normalizers

    from codir_edge.export.strings.rules import acts_per_character

    def described(normalizer) -> dict:
        from tokenizers import Tokenizer, models

        tokenizer = Tokenizer(models.WordPiece({"[UNK]": 0}, unk_token="[UNK]"))
        tokenizer.normalizer = normalizer
        import json

        return json.loads(tokenizer.to_str())["normalizer"]

    for across in (normalizers.NFC(), normalizers.NFKC(), normalizers.Strip(), normalizers.Replace("ab", "c"),
                   normalizers.Sequence([normalizers.Lowercase(), normalizers.NFC()])):  # fmt: skip
        assert not acts_per_character(described(across), across.normalize_str)
    assert acts_per_character(None, lambda s: s)  # no normalizer at all
    # a per-character normalizer that rewrites the separator cannot be asked in batches either
    replaced = normalizers.Sequence([normalizers.Lowercase()])
    assert not acts_per_character(described(replaced), lambda s: s.replace("|", "/"))
