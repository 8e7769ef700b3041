"""What a compress stage hands the spine once its data and teacher are loaded."""

from __future__ import annotations

import gc
from dataclasses import dataclass

from codir_edge.compress.bank.cache import bank_key
from codir_edge.compress.student import count_parameters
from codir_edge.data.encode import Encoded


@dataclass
class Setup:
    """The teacher (None once freed), the tokenizer the student is saved with, the examples the bank
    has one row for (in bank order), the matched teacher layers and how the bank is keyed and built."""

    tokenizer: object
    teacher: object | None
    encoded: Encoded
    mapping: list[int]
    key: str
    pooling: str
    with_logits: bool  # a classifier's bank holds logits; a backbone's does not
    needs_bank: bool  # plain fine-tuning (objective none) reads nothing from the teacher
    teacher_parameters: int
    # rows from here on have no label: the bank's targets there become the teacher's predictions
    labeled_rows: int | None = None
    regression: bool = False
    embedding: str | None = None  # --task embedding: the bank's logits are the teacher's embeddings, so pooled

    @classmethod
    def for_bank(cls, tokenizer, teacher, encoded: Encoded, mapping: list[int], teacher_digest: str, pooling: str,
                 max_length: int, with_logits: bool, needs_bank: bool = True,
                 embedding: str | None = None) -> Setup:  # fmt: skip
        keyed = pooling if embedding is None else f"{pooling}+embedding:{embedding}"  # another table, another key
        key = bank_key(teacher_digest, encoded, mapping, keyed, max_length, with_logits=with_logits)
        parameters = count_parameters(teacher)
        return cls(tokenizer, teacher, encoded, mapping, key, pooling, with_logits, needs_bank, parameters,
                   embedding=embedding)  # fmt: skip

    def free_teacher(self) -> None:
        """Drop the teacher: training reads the bank instead, and the memory goes to the student."""
        self.teacher = None
        gc.collect()
