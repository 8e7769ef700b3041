"""The builder the strings-in graphs share: nodes and constants under ``strings/``, and the steps every
tokenizer kind needs (white space beside added tokens, a per-code-point mapping table)."""

from __future__ import annotations

import re

import numpy as np

CONTRIB = "ai.onnx.contrib"
# Rust's char::is_whitespace (Unicode White_Space), what tokenizers strips beside an lstrip/rstrip token
WHITE_SPACE = r"[\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]"


class Graph:
    """Nodes and constants of the tokenizing prefix, every name under ``strings/`` so none can collide
    with the classifier's own."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._constants: dict[tuple, str] = {}

    def op(self, kind: str, inputs: list[str], output: str | list[str], domain: str = "", **attrs) -> str:
        from onnx import helper

        outputs = [output] if isinstance(output, str) else output
        self.nodes.append(helper.make_node(kind, inputs, outputs, domain=domain, **attrs))
        return outputs[0]

    def const(self, value, dtype=np.int64, scalar: bool = False) -> str:
        from onnx import numpy_helper

        key = (repr(value), np.dtype(dtype).str if dtype is not object else "str", scalar)
        if key not in self._constants:
            array = np.array(value, dtype=dtype)
            array = array.reshape([]) if scalar else array.reshape([-1])
            name = f"strings/const_{len(self._constants)}"
            self.initializers.append(numpy_helper.from_array(array, name))
            self._constants[key] = name
        return self._constants[key]

    def text(self, value: str, scalar: bool = False) -> str:
        return self.const(value, dtype=object, scalar=scalar)


def strip_beside_added(g: Graph, text: str, s: str, tokenizer, raw_only: bool = False) -> str:
    """Added tokens that swallow the white space beside them (RoBERTa's and MPNet's <mask>, lstrip);
    ``raw_only``: only those matched in the raw text (a normalized one strips in the normalized text)."""
    for k, added in enumerate(tokenizer.added_tokens_decoder.values()):
        if raw_only and added.normalized:
            continue
        token = re.escape(added.content)
        for flag, pattern in (("lstrip", f"{WHITE_SPACE}+({token})"), ("rstrip", f"({token}){WHITE_SPACE}+")):
            if getattr(added, flag):
                text = g.op("StringRegexReplace", [text, g.text(pattern), g.text(r"\1")], f"{s}/{flag}_{k}", CONTRIB)
    return text


def map_code_points(g: Graph, text: str, s: str, mapping: dict[str, str], unit: str = "(.)") -> str:
    """Every ``unit`` (a code point; or e.g. a base with its combining marks) through ``mapping``
    (unit -> its replacement, "" to drop it), the rest kept: one element per unit (the split keeps
    each capture as an element), a lookup, a join."""
    outs = [f"{s}/chars", f"{s}/c_begin", f"{s}/c_end", f"{s}/c_rows"]
    g.op("StringRegexSplitWithOffsets", [text, g.text(unit, True), g.text(unit, True)], outs, CONTRIB)
    table = "\n".join(f"{k}\t{v}" for k, v in mapping.items())
    g.op("StringMapping", [f"{s}/chars"], f"{s}/mapped", CONTRIB, map=table)
    g.op("StringJoin", [f"{s}/mapped", g.text(""), g.const([0])], f"{s}/joined", CONTRIB)
    return g.op("Reshape", [f"{s}/joined", g.const([1])], f"{s}/normal")
