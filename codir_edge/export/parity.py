"""PyTorch against onnxruntime, as a hard check: every case is compared, every mismatch collected,
then the export fails once with the worst figure (Optimum only warns).

Cases cover several batch sizes and sequence lengths, padding included, on real task sentences
when there is data and on generated token ids otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codir_edge.core.errors import CheckFailedError
from codir_edge.data.encode import Encoded, pad_batch

BATCH_SIZES = (1, 4, 16)
PROBE_TEXTS = 64  # sentences the parity check (and an embedding's INT8 cosine) runs on


def probe_sentences(tokenizer, texts: list[str], max_length: int, segments: bool | None = None) -> Encoded:
    """The data's ``PROBE_TEXTS`` longest texts (so truncation is exercised), topped up with generated
    sentences when it has fewer or none; tokenized as ``data.encode`` tokenizes for the model."""
    from codir_edge.data.encode import encode
    from codir_edge.data.examples import Examples
    from codir_edge.export.strings.check import generated_sentences

    chosen = sorted(texts, key=len, reverse=True)[:PROBE_TEXTS]
    chosen += generated_sentences(tokenizer, PROBE_TEXTS - len(chosen), seed=0)
    return encode(tokenizer, Examples(chosen, None, [0] * len(chosen), "probes"), max_length, segments)


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: float
    label_agreement: float
    cases: list[dict]  # {"batch", "length", "max_abs_diff"} per case
    source: str  # "task sentences" or "generated token ids"
    atol: float

    def to_dict(self) -> dict:
        return {
            "max_abs_diff": self.max_abs_diff,
            "label_agreement": self.label_agreement,
            "atol": self.atol,
            "source": self.source,
            "cases": self.cases,
        }


def lengths_for(max_length: int) -> tuple[int, ...]:
    return tuple(sorted({min(8, max_length), min(32, max_length), max_length}))


def generated_feeds(vocab_size: int, cls_id: int, sep_id: int, pad_id: int, max_length: int, seed: int = 0):
    """Random ordinary tokens framed by [CLS] ... [SEP], random lengths, right-padded: yields
    (batch, length, feed) for every case."""
    rng = np.random.default_rng(seed)
    low = min(1000, vocab_size - 1)  # skip the special and unused slots at the start of BERT vocabularies
    for length in lengths_for(max_length):
        for batch in BATCH_SIZES:
            ids = rng.integers(low, vocab_size, size=(batch, length))
            mask = np.zeros((batch, length), dtype=np.int64)
            for row in range(batch):
                n = int(rng.integers(min(3, length), length + 1)) if row else length  # one full-length row
                ids[row, 0], ids[row, n - 1] = cls_id, sep_id
                ids[row, n:] = pad_id
                mask[row, :n] = 1
            yield batch, length, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def sentence_feeds(encoded_by_length: dict[int, Encoded], seed: int = 0):
    """Real sentences tokenized at each length (truncated there), padded to their batch's longest."""
    rng = np.random.default_rng(seed)
    for length, encoded in encoded_by_length.items():
        order = np.argsort(-encoded.lengths, kind="stable")  # the longest first: truncation is exercised
        for batch in BATCH_SIZES:
            rows = (
                order[:batch] if batch == 1 else rng.choice(len(encoded), size=min(batch, len(encoded)), replace=False)
            )
            feed = pad_batch(encoded, np.asarray(rows))
            feed.setdefault("token_type_ids", np.zeros_like(feed["input_ids"]))
            yield len(rows), length, feed


def check_parity(model, session, cases, atol: float, source: str) -> ParityReport:
    """Run every case through both; raise CheckFailedError (exit 1) if any output differs by more than ``atol``."""
    import torch

    names = [i.name for i in session.get_inputs()]
    results, agree, total = [], 0, 0
    for batch, length, feed in cases:
        with torch.inference_mode():
            expected = model(**{k: torch.from_numpy(v) for k, v in feed.items() if k in names}).logits.float().numpy()
        got = session.run(None, {name: feed[name] for name in names})[0]
        diff = float(np.max(np.abs(expected - got)))
        results.append({"batch": batch, "length": length, "max_abs_diff": diff})
        agree += int((expected.argmax(-1) == got.argmax(-1)).sum())
        total += len(expected)
    worst = max(results, key=lambda r: r["max_abs_diff"])
    report = ParityReport(worst["max_abs_diff"], agree / max(total, 1), results, source, atol)
    failures = [r for r in results if not r["max_abs_diff"] <= atol]  # NaN fails too
    if failures:
        listed = "; ".join(f"batch {r['batch']} x {r['length']} tokens: {r['max_abs_diff']:.2e}" for r in failures)
        raise CheckFailedError(
            f"ONNX output differs from PyTorch by up to {worst['max_abs_diff']:.2e} (--atol {atol:g}) in "
            f"{len(failures)} of {len(results)} cases ({listed}): the export is wrong; try another --opset"
        )
    return report
