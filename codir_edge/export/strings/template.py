"""Where a tokenizer puts its special tokens around one text or a pair, read from its own
post-processor, so the strings-in graph assembles ids as the tokenizer does: ``[CLS] A [SEP] B [SEP]``
for BERT, ``<s> A </s></s> B </s>`` for RoBERTa, whatever template a tokenizer.json declares."""

from __future__ import annotations

from dataclasses import dataclass

from codir_edge.core.errors import InputError

_NO_GRAPH = "pass --no-tokenizer-in-graph"


@dataclass(frozen=True)
class Template:
    """A pair is ``prefix A middle B suffix``; one text is ``prefix A middle[:len(single_suffix)]``.
    ``first_type`` is the segment id of prefix, A and middle; ``second_type`` that of B and suffix."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    single_suffix: tuple[int, ...]
    first_type: int
    second_type: int

    @property
    def pair_specials(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @property
    def single_specials(self) -> int:
        return len(self.prefix) + len(self.single_suffix)


def _find(ids: list[int], part: list[int], start: int) -> int:
    for i in range(start, len(ids) - len(part) + 1):
        if ids[i : i + len(part)] == part:
            return i
    return -1


def read_template(tokenizer) -> Template:
    """Post-process two plain encodings and see where the special tokens land."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # a copy: padding and truncation off
    backend.no_padding()
    backend.no_truncation()
    a = backend.encode("first words here", add_special_tokens=False)
    b = backend.encode("and then second ones", add_special_tokens=False)
    single = backend.post_process(a, None, add_special_tokens=True)
    pair = backend.post_process(a, b, add_special_tokens=True)
    ids, types = pair.ids, pair.type_ids
    at_a = _find(ids, a.ids, 0)
    at_b = _find(ids, b.ids, at_a + len(a.ids)) if at_a >= 0 else -1
    one_a = _find(single.ids, a.ids, 0)
    if at_a < 0 or at_b < 0 or one_a < 0:
        raise InputError(f"the tokenizer's post-processor rewrites the text's own ids: {_NO_GRAPH}")
    end_a, end_b = at_a + len(a.ids), at_b + len(b.ids)
    template = Template(
        prefix=tuple(ids[:at_a]),
        middle=tuple(ids[end_a:at_b]),
        suffix=tuple(ids[end_b:]),
        single_suffix=tuple(single.ids[one_a + len(a.ids) :]),
        first_type=types[0] if types else 0,
        second_type=types[-1] if types else 0,
    )
    same_prefix = tuple(single.ids[:one_a]) == template.prefix
    if not same_prefix or template.middle[: len(template.single_suffix)] != template.single_suffix:
        raise InputError(f"the tokenizer frames one text differently from a pair's first text: {_NO_GRAPH}")
    if set(types[:at_b]) - {template.first_type}:
        raise InputError(f"the tokenizer mixes segment ids within the first text: {_NO_GRAPH}")
    if set(types[at_b:]) - {template.second_type}:
        raise InputError(f"the tokenizer mixes segment ids within the second text: {_NO_GRAPH}")
    return template
