"""Pick, for each thread count the bundle will run at, the graph that is fastest there.

No one graph wins everywhere: the offline-fused graph (one QAttention per layer) wins with two
threads on short inputs, where fewer, larger operators mean fewer thread-pool dispatches, while the
plain graph won at one thread and length 128 on this project's machine. So every candidate is timed
at every (threads, length) setting, in alternating rounds so that machine noise hits all of them,
and each thread count gets its own winner.

A candidate's score at one thread count is paired by round: in each round, the geometric mean over
the lengths of its median divided by the best median of that round at that length (a graph that is
10% slower at every length scores 1.10 whatever the lengths' absolute costs), then the median over
the rounds it ran. Pairing matters on a shared machine: its speed drifts between rounds by more
than the candidates differ (2-thread runs on this project's 2-core host move by up to 2x for a
minute at a time), so a candidate dropped after two fast rounds could otherwise beat one timed
through five slower ones on its unpaired median. Candidates within the measured noise of the winner are
treated as tied (never beyond 5%), and the simplest of them is kept (fewer fused operators, fewer
files to ship).

Time goes only where the choice is open: after two rounds, a candidate clearly slower than the best
of its kind at a thread count is not timed there again (``clearly_slower``), and the whole timing is
kept per graph contents and machine (``timing_cache.py``), so an unchanged model is not timed twice.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.inputs import REAL

# Simplest first: what is kept among candidates that time within the noise of each other.
GRAPH_ORDER = ("plain", "fused-noattn", "fused", "o2")  # o2: Optimum's, extended optimisations baked in
QUANT_ORDER = ("dynamic", "dynamic-pt", "optimum", "qdq", "dynamic-mixed", "qdq-mixed")


@dataclass(frozen=True)
class Setting:
    threads: int
    length: int | str  # a token count, or REAL: the dev sentences at their own lengths

    @property
    def key(self) -> str:
        return f"t{self.threads}/{self.length}"


def simplicity(name: str) -> tuple[int, int]:
    """'fused.dynamic-pt' -> (2, 1): the rank of its graph, then of its quantization (a 'kind:'
    prefix, as in 'int8:plain.dynamic', is ignored)."""
    graph, _, quant = name.rpartition(":")[2].partition(".")
    return (
        GRAPH_ORDER.index(graph) if graph in GRAPH_ORDER else len(GRAPH_ORDER),
        QUANT_ORDER.index(quant) if quant in QUANT_ORDER else -1,
    )


ROUNDS, RUNS = 5, 20  # rounds of timing, and runs per length within each
MAX_NOISE = 0.05  # a tie is never wider than this, however noisy the rounds were
MIN_ROUNDS = 2  # rounds every candidate gets (one in each order) before any can be dropped
CLEARLY = 0.20  # how much slower a candidate's fastest rounds must be than the leader's slowest to be dropped


def time_candidates(
    candidates: dict[str, Path],
    settings: list[Setting],
    vocab: int,
    real_rows: list[list[int]] | None,
    rounds: int = ROUNDS,
    runs: int = RUNS,
    pools: list[list[str]] | None = None,
) -> dict[str, dict[str, dict]]:
    """setting key -> candidate -> {"median_ms", "spread_ms", "rounds_ms"}, batch 1; a candidate
    dropped early also has "dropped_after_round".

    ``spread_ms`` is half the range of the per-round medians: the noise a difference must clear.
    Only one session lives at a time: onnxruntime's intra-op threads spin for a while after each
    run, and with several sessions alive their spinning threads take the cores from the one being
    timed (at 2 threads on 2 cores this made the fused graph look 15% slower than it runs alone).
    Each round opens each candidate afresh, warms it up and times every length of that thread count.
    After ``MIN_ROUNDS``, a candidate clearly slower than the best of its pool (``pools``: the groups
    chosen among separately, fp32 and INT8; one pool by default) at a thread count is not timed there
    again (``clearly_slower``): the remaining rounds go to the ones still in the running.
    """
    from codir_edge.core.inputs import synthetic_token_ids, to_feed
    from codir_edge.onnx.session import create_session

    pools = pools or [list(candidates)]
    per_round: dict[str, dict[str, list[float]]] = {s.key: {n: [] for n in candidates} for s in settings}
    dropped: dict[str, dict[str, int]] = {s.key: {} for s in settings}
    for threads in sorted({s.threads for s in settings}):
        mine = [s for s in settings if s.threads == threads]
        rows = {
            s.key: [[r] for r in (real_rows or [])[:runs]] if s.length == REAL
            else [synthetic_token_ids(1, int(s.length), vocab=vocab)] * runs
            for s in mine
        }  # fmt: skip
        running = list(candidates)
        for round_no in range(rounds):
            order = running if round_no % 2 == 0 else list(reversed(running))
            for name in order:
                session = create_session(candidates[name], threads)
                names = [i.name for i in session.get_inputs()]
                for setting in mine:
                    feeds = [to_feed(r, names) for r in rows[setting.key]]
                    for feed in feeds[:3]:  # warm-up: kernels, pre-packed weights, the thread pool
                        session.run(None, feed)
                    per_round[setting.key][name].append(_median_run(session, feeds))
                del session
            if MIN_ROUNDS <= round_no + 1 < rounds:
                keys = [s.key for s in mine]
                out = {n for pool in pools for n in clearly_slower(per_round, keys, [m for m in pool if m in running])}
                for name in out:
                    for key in keys:
                        dropped[key][name] = round_no + 1
                running = [n for n in running if n not in out]
    return {
        key: {
            name: {
                "median_ms": statistics.median(values),
                "spread_ms": (max(values) - min(values)) / 2,
                "rounds_ms": [round(v, 4) for v in values],
                **({"dropped_after_round": dropped[key][name]} if name in dropped[key] else {}),
            }
            for name, values in row.items()
        }
        for key, row in per_round.items()
    }


def clearly_slower(per_round: dict[str, dict[str, list[float]]], keys: list[str], pool: list[str]) -> list[str]:
    """The candidates of ``pool`` that later rounds would not bring into a tie with its best: even their
    fastest rounds (geometric mean over the lengths, against each length's best median) are more than
    ``CLEARLY`` slower than the slowest rounds of the candidate whose slowest rounds are fastest. The
    margin is four times the widest tie (``MAX_NOISE``): two rounds on a busy machine can differ by
    a third, and a candidate dropped wrongly is a choice lost."""
    if len(pool) < 2:
        return []
    best = {k: min(statistics.median(per_round[k][n]) for n in pool) for k in keys}

    def bound(name: str, pick) -> float:
        return _geomean([pick(per_round[k][name]) / best[k] for k in keys])

    leader = min(pool, key=lambda n: bound(n, max))
    ceiling = bound(leader, max) * (1 + CLEARLY)
    return [n for n in pool if n != leader and bound(n, min) > ceiling]


def _median_run(session, feeds: list[dict]) -> float:
    samples = []
    for feed in feeds:
        start = time.perf_counter_ns()
        session.run(None, feed)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(samples)


def choose(measured: dict[str, dict[str, dict]], settings: list[Setting], sizes: dict[str, int],
           keep=None) -> dict[int, dict | None]:  # fmt: skip
    """threads -> {"chosen", "fastest", "noise", "scores"} over the candidates ``measured`` holds.
    Among ties, a graph already picked for a smaller thread count comes first (one file fewer),
    then the simplest, then the smallest. Only candidates ``keep(name)`` accepts (an INT8 graph
    within the accuracy limit) count, and it is asked lazily: of the fastest, then of the tied ones
    in the order they would be picked, so a candidate no choice reaches is never asked about (never
    scored). Without per-round figures, the choice is exactly the one made among the accepted
    candidates alone; with them, a candidate not yet asked about still sets its rounds' pace
    (``paired_scores``). None when no candidate is accepted."""
    keep = keep or (lambda name: True)
    chosen: dict[int, dict | None] = {}
    for threads in sorted({s.threads for s in settings}):
        keys = [s.key for s in settings if s.threads == threads]
        names = list(measured[keys[0]])
        chosen[threads] = None
        while names:
            scores = paired_scores(measured, keys, names)
            fastest = min(names, key=scores.__getitem__)
            if not keep(fastest):
                names.remove(fastest)
                continue
            scores = {n: s / scores[fastest] for n, s in scores.items()}  # 1.00 = the fastest
            # the fastest's own relative spread, averaged over lengths: what a difference must clear
            spread = statistics.fmean(measured[k][fastest]["spread_ms"] / measured[k][fastest]["median_ms"]
                                      for k in keys)  # fmt: skip
            noise = min(spread, MAX_NOISE)
            tied = [n for n in names if scores[n] <= scores[fastest] * (1 + noise)]
            shipped = {c["chosen"] for c in chosen.values() if c is not None}
            ranked = sorted(tied, key=lambda n: (n not in shipped, simplicity(n), sizes.get(n, 0), scores[n]))
            pick = next(n for n in ranked if n == fastest or keep(n))  # the fastest itself is kept
            chosen[threads] = {
                "chosen": pick,
                "fastest": fastest,
                "noise": round(noise, 4),
                "scores": {n: round(s, 4) for n, s in scores.items()},
            }
            break
    return chosen


def paired_scores(measured: dict[str, dict[str, dict]], keys: list[str], names: list[str]) -> dict[str, float]:
    """name -> median over its rounds of (geometric mean over ``keys`` of its median in that round over
    the best median of that round among ``names``). A candidate dropped early has only its first
    rounds, which are compared with the others' same rounds. Without per-round figures (an old
    timing cache), the medians over all rounds are compared instead."""
    if not all("rounds_ms" in measured[k][n] for k in keys for n in names):
        best = {k: min(measured[k][n]["median_ms"] for n in names) for k in keys}
        return {n: _geomean([measured[k][n]["median_ms"] / best[k] for k in keys]) for n in names}
    rounds = {n: min(len(measured[k][n]["rounds_ms"]) for k in keys) for n in names}
    per_round: dict[str, list[float]] = {n: [] for n in names}
    for r in range(max(rounds.values())):
        present = [n for n in names if rounds[n] > r]
        best = {k: min(measured[k][n]["rounds_ms"][r] for n in present) for k in keys}
        for n in present:
            per_round[n].append(_geomean([measured[k][n]["rounds_ms"][r] / best[k] for k in keys]))
    return {n: statistics.median(values) for n, values in per_round.items()}


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))
