"""The device side of ``profile``: one self-contained file, copied to the device and run there.

It needs only the standard library, numpy and onnxruntime, and runs on Python 3.8 or later, so a
board with ``pip install onnxruntime numpy`` can be measured without codir-edge, torch or a
tokenizer (inputs arrive as token-id ``.npy`` files prepared on the host). The local device runs
this same file, so a figure measured over SSH and one measured here come from one protocol.

What the device is (the preflight) is ``probe.py``'s job, a second such file. Subcommands
(``python runner.py CMD ...``; results are one JSON object on stdout):

- ``have PATH...``: which of these files are missing (the host uploads only those).
- ``put PATH SHA256``: stdin to PATH, renamed into place only when its sha256 matches, so an
  interrupted or corrupted upload never becomes a cache entry.
- ``clean WORKDIR``: remove WORKDIR/cache, the only thing codir-edge keeps on a device.
- ``measure``: spec JSON on stdin (one line). Runs the timed loop in a fresh child process, kills
  it past ``timeout_s`` and when the caller goes away (stdin closes), and turns a child killed by a
  signal (the out-of-memory killer) into a ``fault`` instead of a silent empty answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

CACHE = "cache"
EXIT_TIMEOUT = 124


# --- the cache -------------------------------------------------------------------------------------


def missing(paths: list) -> list:
    return [p for p in paths if not os.path.isfile(os.path.expanduser(p))]


def put(path: str, sha256: str, source=None) -> None:
    """Write ``source`` (stdin) to PATH through a private part file; exit 3 on a hash mismatch
    (a cut upload), 4 when the disk is full. Either way the part file is removed."""
    source = source or sys.stdin.buffer
    path = os.path.expanduser(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = f"{path}.part-{os.getpid()}"
    digest = hashlib.sha256()
    try:
        with open(part, "wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            os.unlink(part)
            sys.stderr.write(f"upload of {path} arrived incomplete\n")
            sys.exit(3)
        os.replace(part, path)
    except OSError as exc:
        if os.path.exists(part):
            os.unlink(part)
        sys.stderr.write(f"cannot write {path}: {exc.strerror}\n")
        sys.exit(4 if exc.errno in (28, 122) else 5)  # ENOSPC, EDQUOT


def clean(workdir: str) -> int:
    """Remove WORKDIR/cache and nothing else (a workdir may be a shared folder); bytes freed."""
    cache = os.path.join(os.path.expanduser(workdir), CACHE)
    freed = 0
    for root, _, files in os.walk(cache):
        freed += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    shutil.rmtree(cache, ignore_errors=True)
    return freed


# --- measuring -------------------------------------------------------------------------------------


def session_options(threads: int):
    """``threads`` intra-op threads, one inter-op thread, sequential execution, all graph
    optimisations: the settings of every session codir-edge times or scores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def pin(cpus) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


def _proc_status_mb(field: str):
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process only. Linux keeps ``ru_maxrss`` across fork and exec, so a
    worker would report its parent's peak; VmHWM belongs to the new address space made by exec."""
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / 1024.0


def timed_loop(run, feeds: list, runs: int, duration_s, warmup: int) -> list:
    """``warmup`` untimed calls, then ``runs`` timed ones (or as many as fit in ``duration_s``)."""
    for i in range(warmup):
        run(feeds[i % len(feeds)])
    samples = []
    clock = time.perf_counter_ns
    deadline = clock() + int(duration_s * 1e9) if duration_s else None
    i = 0
    while (len(samples) < runs) if deadline is None else (clock() < deadline or len(samples) < 3):
        feed = feeds[i % len(feeds)]
        start = clock()
        run(feed)
        samples.append((clock() - start) / 1e6)
        i += 1
    return samples


def feeds(ids, lengths, names: list, dtype, fixed_width=None) -> list:
    """One feed per batch from ``ids`` [batches, batch, width] (pad-filled) and ``lengths``
    [batches, batch]; each batch is cut to its own longest row, as a real batch would be padded, or,
    for a graph with a fixed sequence length, padded (or cut) to that length, as an app feeding it must."""
    import numpy as np

    out = []
    for batch_ids, batch_lengths in zip(ids, lengths):
        width = fixed_width or int(batch_lengths.max())
        if width > batch_ids.shape[1]:
            batch_ids = np.pad(batch_ids, ((0, 0), (0, width - batch_ids.shape[1])), constant_values=0)  # masked out
        batch_lengths = np.minimum(batch_lengths, width)
        input_ids = np.ascontiguousarray(batch_ids[:, :width], dtype=dtype)
        mask = (np.arange(width)[None, :] < batch_lengths[:, None]).astype(dtype)
        arrays = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        out.append({name: arrays[name] for name in names if name in arrays})
    return out


def measure_here(spec: dict) -> dict:
    """Cold start (session creation and the first run, timed after imports) and the timed loop."""
    import numpy as np
    import onnxruntime as ort

    pin(spec.get("cpus"))
    ids, lengths = np.load(os.path.expanduser(spec["ids"])), np.load(os.path.expanduser(spec["lengths"]))
    start = time.perf_counter_ns()
    session = ort.InferenceSession(
        os.path.expanduser(spec["model"]), session_options(spec["threads"]), providers=[spec["provider"]]
    )
    inputs = session.get_inputs()
    dtype = np.int32 if any(i.type == "tensor(int32)" for i in inputs) else np.int64
    width = inputs[0].shape[1] if len(inputs[0].shape) == 2 else None
    batches = feeds(ids, lengths, [i.name for i in inputs], dtype, width if isinstance(width, int) else None)
    session.run(None, batches[0])
    cold_ms = (time.perf_counter_ns() - start) / 1e6
    samples = timed_loop(lambda f: session.run(None, f), batches, spec["runs"], spec.get("duration_s"), spec["warmup"])
    return {
        "cold_start_ms": cold_ms,
        "samples_ms": samples,
        "providers": session.get_providers(),
        "peak_rss_mb": peak_rss_mb(),
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return "{}: {}".format(type(exc).__name__, text.splitlines()[0] if text else "")


def _worker() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        result = measure_here(spec)
    except MemoryError:
        result = {"error": "ran out of memory", "fault": "memory"}
    except Exception as exc:  # reported to the host, which turns it into a one-line error
        result = {"error": _first_line(exc)}
    sys.stdout.write(json.dumps(result))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def supervise(spec: dict, caller=None) -> dict:
    """Run the worker in a fresh process; stop it past the timeout or when ``caller`` (a stream the
    host holds open) reaches end of file, which is how a cut SSH connection or Ctrl-C shows here."""
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    gone = threading.Event()
    if caller is not None:
        threading.Thread(target=lambda: (caller.read(), gone.set()), daemon=True).start()
    output = {}
    reader = threading.Thread(
        target=lambda: output.update(zip(("out", "err"), child.communicate(json.dumps(spec).encode())))
    )
    reader.start()
    deadline = time.monotonic() + float(spec.get("timeout_s") or 1e9)
    while reader.is_alive():
        reader.join(0.05)
        if gone.is_set() or time.monotonic() > deadline:
            child.kill()
            reader.join()
            if gone.is_set():
                return {"error": "the host went away", "fault": "interrupted"}
            return {"error": "exceeded the {:g} s timeout".format(spec["timeout_s"]), "fault": "timeout"}
    if child.returncode < 0:
        name = _signal_name(-child.returncode)
        hint = " (out of memory?)" if child.returncode == -signal.SIGKILL else ""
        return {"error": f"the worker was killed by {name}{hint}", "fault": "killed"}
    try:
        return json.loads(output.get("out", b"").decode())
    except ValueError:
        tail = (output.get("err", b"").decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return {"error": f"the worker exited {child.returncode} ({tail})", "fault": "crashed"}


def main(argv: list) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "have":
        print(json.dumps(missing(args)))
    elif command == "put":
        put(args[0], args[1])
    elif command == "clean":
        print(json.dumps({"freed_bytes": clean(args[0])}))
    elif command == "measure":
        spec = json.loads(sys.stdin.buffer.readline().decode())
        result = supervise(spec, caller=sys.stdin.buffer)
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        # The thread still blocked reading stdin would abort a normal interpreter shutdown.
        os._exit(EXIT_TIMEOUT if result.get("fault") == "timeout" else 0)
    elif command == "worker":
        _worker()
    else:
        sys.stderr.write("usage: runner.py have|put|clean|measure|worker ...\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
