"""One device for the length of a ``profile`` run: preflight, upload into its cache, measure, clean.

The same runner file answers every call on every device; the transports differ only in how a
Python command line reaches it. Locally the files are measured where they lie; over SSH they go into
``WORKDIR/cache/<sha256>/`` first, and a file already there is not sent again.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codir_edge.bundle.manifest import sha256_of
from codir_edge.core import probe, runner
from codir_edge.core.errors import DeviceFault
from codir_edge.devices.measurement import Measurement
from codir_edge.devices.spec import Device
from codir_edge.devices.ssh import SshTransport, is_python_missing

RUNNER_SOURCE = Path(runner.__file__).read_bytes()
PROBE_SOURCE = Path(probe.__file__).read_bytes()  # the preflight, piped: nothing is uploaded before it
CALL_TIMEOUT_S = 120


class LocalTransport:
    local = True

    def __init__(self, device: Device):
        self.device = device

    def open(self) -> None:
        pass

    def argv(self, python_args: list[str]) -> list[str]:
        return [sys.executable, *python_args]

    def explain(self, returncode: int, stderr: str) -> str | None:  # noqa: ARG002 - same signature as SSH
        return None

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Group:
    """Files that must sit side by side on the device (a model and its external data; a batch's
    ids and lengths), cached under one key made of their contents."""

    files: tuple[Path, ...]

    def key(self, digests: dict[Path, str]) -> str:
        lines = "".join(f"{p.name}:{digests[p]}\n" for p in self.files)
        return hashlib.sha256(lines.encode()).hexdigest()


def write_batches(batches: list[list[list[int]]], pad_id: int, folder: Path) -> Group:
    """Batches of token-id rows as two ``.npy`` files, ids [batches, batch, width] filled with
    ``pad_id`` and lengths [batches, batch]; named by their contents, as the device cache is."""
    width = max(len(row) for batch in batches for row in batch)
    ids = np.full((len(batches), len(batches[0]), width), pad_id, dtype=np.int32)
    lengths = np.zeros((len(batches), len(batches[0])), dtype=np.int32)
    for b, batch in enumerate(batches):
        for i, row in enumerate(batch):
            ids[b, i, : len(row)] = row
            lengths[b, i] = len(row)
    key = hashlib.sha256(ids.tobytes() + lengths.tobytes() + str(ids.shape).encode()).hexdigest()[:16]
    paths = (folder / f"{key}.ids.npy", folder / f"{key}.lengths.npy")
    np.save(paths[0], ids)
    np.save(paths[1], lengths)
    return Group(paths)


def _fault(device: Device, problem: str, fix: str) -> DeviceFault:
    return DeviceFault(f"{device.name}: {problem}: {fix}")


class DeviceSession:
    """Open with ``with``: the SSH master connection is closed however the run ends."""

    def __init__(self, device: Device):
        self.device = device
        self.transport = LocalTransport(device) if device.is_local else SshTransport(device)
        self.description: dict = {}
        self.uploaded_bytes = 0
        self.runner_path = runner.__file__ if device.is_local else ""

    def __enter__(self) -> DeviceSession:
        self.transport.open()
        return self

    def __exit__(self, *exc) -> None:
        self.transport.close()

    def _run(self, python_args: list[str], stdin: bytes | None, what: str) -> subprocess.CompletedProcess:
        """Run a runner command; an SSH failure becomes the transport's one-line account."""
        try:
            done = subprocess.run(
                self.transport.argv(python_args), input=stdin, capture_output=True, timeout=CALL_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise _fault(self.device, f"{what} did not answer within {CALL_TIMEOUT_S} s", "check the device") from None
        explained = self.transport.explain(done.returncode, done.stderr.decode(errors="replace"))
        if explained:
            raise DeviceFault(explained)
        return done

    def _call(self, python_args: list[str]) -> str:
        """A runner command given its source on stdin; its stdout, or a one-line failure."""
        done = self._run(python_args, RUNNER_SOURCE, "a command")
        if done.returncode != 0:
            line = _tail(done.stderr.decode(errors="replace"), f"exit {done.returncode}")
            raise _fault(self.device, f"the runner failed ({line})", "rerun with --debug, or check the device")
        return done.stdout.decode()

    # --- preflight ---------------------------------------------------------------------------------

    def describe(self) -> dict:
        """Python, numpy, onnxruntime, CPU, memory, disk: refused with the fix before any upload."""
        device = self.device
        if self.transport.local:  # this interpreter runs the probe's own code: no process to start
            self.description = probe.describe(device.workdir)
            return self.description
        done = self._run(["-", "describe", device.workdir], PROBE_SOURCE, "the preflight")
        stderr = done.stderr.decode(errors="replace")
        where = "in the devices file"
        if done.returncode != 0 and is_python_missing(done.returncode, stderr):
            raise _fault(
                device,
                f"{device.python} was not found",
                f"install Python 3.8 or later there, or set python = ... {where}",
            )
        if done.returncode != 0 and "SyntaxError" in stderr:
            raise _fault(
                device, f"{device.python} is older than Python 3.8", f"set python = ... {where} to a newer one"
            )
        try:
            found = json.loads(done.stdout.decode())
        except ValueError:
            line = _tail(stderr, f"exit {done.returncode}")
            raise _fault(device, f"the preflight failed ({line})", "rerun with --debug, or check the device") from None
        missing = [name for name in ("onnxruntime", "numpy") if name in found["import_errors"]]
        if missing:
            raise _fault(
                device,
                f"{' and '.join(missing)} cannot be imported by {found['python_path']} "
                f"({found['import_errors'][missing[0]]})",
                f"run '{device.python} -m pip install onnxruntime numpy' there, or set python = ... {where}",
            )
        self.description = found
        return found

    # --- the cache ---------------------------------------------------------------------------------

    def _cache_path(self, key: str, name: str) -> str:
        return f"{self.device.workdir.rstrip('/')}/{runner.CACHE}/{key}/{name}"

    def stage(self, groups: list[Group]) -> dict[Path, str]:
        """Where each file is on the device, uploading only what its cache lacks; the runner too."""
        if self.transport.local:
            return {p: str(p) for group in groups for p in group.files}
        runner_key = hashlib.sha256(RUNNER_SOURCE).hexdigest()
        self.runner_path = self._cache_path(runner_key, "runner.py")
        digests = {p: sha256_of(p) for group in groups for p in group.files}
        placed: dict[Path, str] = {}
        for group in groups:
            key = group.key(digests)
            placed.update({p: self._cache_path(key, p.name) for p in group.files})
        wanted = [self.runner_path, *placed.values()]
        absent = set(json.loads(self._call(["-", "have", *wanted])))
        uploads = [(p, remote) for p, remote in placed.items() if remote in absent]
        needed = sum(p.stat().st_size for p, _ in uploads) + len(RUNNER_SOURCE)
        free = self.description.get("free_mb")
        if free is not None and needed / 2**20 > free:
            raise self._disk_full(needed)
        if self.runner_path in absent:
            self._put(RUNNER_SOURCE, None, self.runner_path, runner_key)
        for path, remote in uploads:
            self._put(None, path, remote, digests[path])
        return placed

    def _disk_full(self, needed: int) -> DeviceFault:
        free = self.description.get("free_mb") or 0.0
        return _fault(
            self.device,
            f"{needed / 2**20:.1f} MB must go into {self.description.get('workdir', self.device.workdir)}, "
            f"{free:.1f} MB is free",
            "free space on the device, or set workdir = ... in the devices file",
        )

    def _put(self, data: bytes | None, path: Path | None, remote: str, sha: str) -> None:
        size = len(data) if data is not None else path.stat().st_size
        argv = self.transport.argv(["-c", RUNNER_SOURCE.decode(), "put", remote, sha])
        timeout = CALL_TIMEOUT_S + size / 1e6  # at least 1 MB/s
        source = open(path, "rb") if path is not None else subprocess.PIPE  # noqa: SIM115 - closed below
        try:
            process = subprocess.Popen(argv, stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                _, err = process.communicate(data, timeout=timeout)
            except BaseException:
                process.kill()
                process.wait()
                raise
        except subprocess.TimeoutExpired:
            raise _fault(self.device, f"uploading {remote} took over {timeout:.0f} s", "check the link") from None
        finally:
            if path is not None:
                source.close()
        stderr = err.decode(errors="replace")
        explained = self.transport.explain(process.returncode, stderr)
        if explained:
            raise DeviceFault(explained)
        if process.returncode == 4:
            raise self._disk_full(size)
        if process.returncode != 0:
            raise _fault(self.device, f"uploading {remote} failed ({_tail(stderr)})", "check the workdir on the device")
        self.uploaded_bytes += size

    def clean(self) -> int:
        """Empty the device's cache (``--clean-device``); the bytes freed."""
        return json.loads(self._call(["-", "clean", self.device.workdir]))["freed_bytes"]

    # --- measuring ---------------------------------------------------------------------------------

    def measure(self, spec: Measurement, what: str) -> dict:
        """One configuration in a fresh process on the device; ``what`` names it in errors."""
        process = subprocess.Popen(
            self.transport.argv([self.runner_path, "measure"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        streams: dict[str, bytes] = {}
        readers = [
            threading.Thread(target=lambda n=n, s=s: streams.__setitem__(n, s.read()), daemon=True)
            for n, s in (("out", process.stdout), ("err", process.stderr))
        ]
        for reader in readers:
            reader.start()
        try:
            process.stdin.write(spec.to_json().encode() + b"\n")
            process.stdin.flush()
            process.wait(timeout=spec.timeout_s + 30)  # the runner enforces timeout_s itself
        except subprocess.TimeoutExpired:
            _stop(process)
            raise _fault(self.device, f"{what} did not finish within its --timeout", "raise --timeout") from None
        except BaseException:  # Ctrl-C: closing stdin tells the runner to kill its worker
            _stop(process)
            raise
        process.stdin.close()
        for reader in readers:
            reader.join()
        stderr = streams.get("err", b"").decode(errors="replace")
        explained = self.transport.explain(process.returncode, stderr)
        if explained:
            raise DeviceFault(explained)
        try:
            result = json.loads(streams.get("out", b"").decode())
        except ValueError:
            raise _fault(
                self.device, f"measuring {what} gave no answer ({_tail(stderr)})", "rerun with --debug"
            ) from None
        return self._checked(result, what, spec)

    def _checked(self, result: dict, what: str, spec: Measurement) -> dict:
        fault, error = result.get("fault"), result.get("error")
        if fault == "timeout":
            raise _fault(
                self.device,
                f"{what} exceeded the {spec.timeout_s:g} s --timeout",
                "raise --timeout, or lower --runs or --duration",
            )
        if fault in ("killed", "memory"):
            raise _fault(
                self.device,
                f"the worker measuring {what} {error}",
                "measure a smaller batch size or sequence length, or free memory on the device",
            )
        if error:
            raise _fault(self.device, f"measuring {what} failed ({error})", "check the model with codir-edge verify")
        return result


def _stop(process: subprocess.Popen) -> None:
    try:
        process.stdin.close()
        process.wait(5)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()


def _tail(stderr: str, default: str = "no message") -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else default
