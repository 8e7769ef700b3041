"""Reach a device with the system OpenSSH client, so that keys, agents, ``~/.ssh/config`` and
ProxyJump behave as the user set them up.

One master connection per device (``ControlMaster``) carries every command of a sweep: the
handshake is paid once, and each configuration's fresh process costs a channel, not a login.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from codir_edge.core.errors import DeviceFault, InputError
from codir_edge.devices.spec import Device

CONNECT_TIMEOUT_S = 10
UNREACHABLE = (
    "Connection refused",
    "Connection timed out",
    "No route to host",
    "Could not resolve hostname",
    "Network is unreachable",
    "Operation timed out",
    "Name or service not known",
    "Connection closed by",
    "Connection reset",
)


def remote_command(device: Device, python_args: list[str]) -> str:
    """The shell line run on the device; a ``~/`` interpreter path is expanded there, not here."""
    python = device.python
    rendered = '"$HOME"/' + shlex.quote(python[2:]) if python.startswith("~/") else shlex.quote(python)
    env = [shlex.quote(f"{k}={v}") for k, v in device.env.items()]
    return " ".join((["env", *env] if env else []) + [rendered] + [shlex.quote(a) for a in python_args])


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Warning:")]
    return lines[-1] if lines else "no message"


class SshTransport:
    local = False

    def __init__(self, device: Device):
        self.device = device
        self.control_dir: str | None = None

    def _base(self) -> list[str]:
        device = self.device
        args = ["ssh", "-T"]
        for option in device.ssh_options:  # ssh keeps the first value given: the user's come first
            args += ["-o", option]
        if device.port:
            args += ["-p", str(device.port)]
        if device.user:
            args += ["-l", device.user]
        if device.identity_file:
            args += ["-i", device.identity_file, "-o", "IdentitiesOnly=yes"]
        args += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
        args += ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"]
        return args + ["-o", f"ControlPath={self.control_dir}/%C"]

    def open(self) -> None:
        if shutil.which("ssh") is None:
            raise InputError(
                "the OpenSSH client (ssh) is not installed here: install it (apt-get install openssh-client)"
            )
        # A short folder: the socket path must fit in 104 bytes on some systems.
        self.control_dir = tempfile.mkdtemp(prefix="codir-ssh-", dir="/tmp" if os.path.isdir("/tmp") else None)
        log = Path(self.control_dir) / "master.log"
        with open(log, "wb") as err:
            try:
                done = subprocess.run(
                    [*self._base(), "-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-f", "-N"]
                    + ["--", self.device.host],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    timeout=CONNECT_TIMEOUT_S * 6,
                )
                code = done.returncode
            except subprocess.TimeoutExpired:
                code = 255
        if code != 0:
            message = self.explain(255, log.read_text(errors="replace") or "the connection timed out")
            self.close()
            raise DeviceFault(message)

    def argv(self, python_args: list[str]) -> list[str]:
        command = remote_command(self.device, python_args)
        return [*self._base(), "-o", "ControlMaster=no", "--", self.device.host, command]

    def explain(self, returncode: int, stderr: str) -> str | None:
        """A one-line account of an SSH failure (exit 255), or None when the remote command itself
        exited with that status."""
        if returncode != 255:
            return None
        device, line = self.device, _last_line(stderr)
        if "Permission denied" in stderr or "Too many authentication failures" in stderr:
            return (
                f"{device.name}: {device.address} refused authentication ({line}): check user and identity_file "
                "in the devices file, and that the key is in the device's ~/.ssh/authorized_keys"
            )
        if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
            return (
                f"{device.name}: the host key of {device.address} is unknown or has changed: connect once "
                "with ssh to check and accept it, or add it to known_hosts"
            )
        if any(marker in stderr for marker in UNREACHABLE):
            return (
                f"{device.name}: cannot reach {device.address} ({line}): check host and port in the devices "
                "file, and that sshd runs there"
            )
        return f"{device.name}: SSH to {device.address} failed ({line}): check that the device is up and reachable"

    def close(self) -> None:
        if self.control_dir is None:
            return
        if any(Path(self.control_dir).glob("*")) and shutil.which("ssh"):
            subprocess.run(
                [*self._base(), "-O", "exit", "--", self.device.host], capture_output=True, timeout=15, check=False
            )
        shutil.rmtree(self.control_dir, ignore_errors=True)
        self.control_dir = None


def is_python_missing(returncode: int, stderr: str) -> bool:
    return returncode == 127 or bool(re.search(r"not found|No such file or directory", stderr))
