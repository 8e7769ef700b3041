"""The student: which teacher layers it is matched with, and how its weights start.

Skip initialisation (codir.md, step 6) copies the embeddings, the mapped teacher layers and the
classifier head, so a 3-of-6 student starts as a working (if weaker) classifier rather than from
noise; a pretrained smaller model (``--student``) replaces that, and the projection heads absorb
any difference in width.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.models.families import depth, family_of, set_depth

# A sentence that exercises case, accents, punctuation and digits: tokenizers that agree on it and on
# their vocabularies split text the same way.
_TOKENIZER_PROBE = "Héllo WORLD, the naïve café's 1,234 crème-brûlée!  Ünïcödé [SEP] tokens"


def layer_map(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layer (1-based) matched with each student layer i = 1..L_S: round(i * L_T / L_S),
    halves rounded up (Python's round would send 4.5 to 4), the uniform skip mapping of BERT-PKD."""
    return [math.floor(i * teacher_layers / student_layers + 0.5) for i in range(1, student_layers + 1)]


def check_student_layers(requested: int | None, teacher_layers: int, teacher_dir: Path, narrower: bool = False) -> int:
    """``--student-layers`` resolved (default: half the teacher) and checked against the teacher's depth;
    a ``narrower`` student (width-pruned) may keep every layer."""
    layers = max(1, teacher_layers // 2) if requested is None else requested
    deepest = teacher_layers if narrower else teacher_layers - 1
    if not 1 <= layers <= deepest:
        smaller = "a student keeps at most all of them" if narrower else "a student must be shallower (or narrower)"
        raise InputError(
            f"--student-layers {layers} must be between 1 and {deepest}: the teacher {teacher_dir} "
            f"has {teacher_layers} layers and {smaller}"
        )
    return layers


def skip_student(teacher, layers: int):
    """A student of the teacher's own class (a classifier, a bare backbone or a masked LM) with
    ``layers`` blocks copied from the mapped teacher blocks, plus everything else (embeddings, pooler,
    classifier or MLM head) copied as is. The family says where blocks are numbered in the state dict
    ("bert.encoder.layer.3.attention..."); ALBERT's one shared block has no number, so its student
    keeps the same weights and runs them fewer times (faster, not smaller)."""
    config = copy.deepcopy(teacher.config)
    set_depth(config, layers)
    student = type(teacher)(config)
    mapping = layer_map(depth(teacher.config), layers)
    family = family_of(config)
    if family.shared_blocks and int(getattr(config, "num_hidden_groups", 1)) > layers:
        raise InputError(
            f"the teacher shares its blocks in {config.num_hidden_groups} groups, more than --student-layers "
            f"{layers}: use at least {config.num_hidden_groups} student layers"
        )
    block_key = None if family.shared_blocks else family.block_key()
    source = teacher.state_dict()
    weights = {}
    for key in student.state_dict():
        match = block_key.match(key) if block_key is not None else None
        src = f"{match[1]}{mapping[int(match[2])] - 1}.{match[3]}" if match else key
        weights[key] = source[src].detach().clone()
    student.load_state_dict(weights, strict=True)
    return student


def check_same_tokenizer(teacher_tok, student_tok, teacher_dir: Path, student_dir: Path) -> None:
    """The bank holds the teacher's view of token ids the student also reads: both must split text alike."""
    same = teacher_tok.get_vocab() == student_tok.get_vocab() and (
        teacher_tok(_TOKENIZER_PROBE)["input_ids"] == student_tok(_TOKENIZER_PROBE)["input_ids"]
    )
    if not same:
        raise InputError(
            f"--student {student_dir} uses a different tokenizer than --teacher {teacher_dir}: "
            "pick a student from the same model family (same vocabulary and lower-casing)"
        )


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
