"""A real OpenSSH server on 127.0.0.1 for the remote-profiling tests, and a device Python without codir-edge.

The server runs Debian's ``/usr/sbin/sshd`` in the foreground with its own ``sshd_config``, a
throwaway host key and one authorised user key, at a free port; it logs in as the user running the
tests. The device interpreter is a virtual environment that sees onnxruntime and numpy (and what
they import) and nothing else, so a runner that reached for codir-edge, torch or a tokenizer fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
# What onnxruntime and numpy import at run time; nothing of codir-edge, torch, transformers or tokenizers.
DEVICE_PACKAGES = ("numpy", "numpy.libs", "onnxruntime", "flatbuffers", "packaging", "google", "protobuf")


@dataclass(frozen=True)
class Sshd:
    port: int
    user: str
    key: Path  # the authorised private key
    known_hosts: Path
    home: Path  # a scratch folder the tests use as device workdirs

    def device_toml(self, name: str, python: str, workdir: str, **extra: str) -> str:
        lines = [
            "[[device]]",
            f'name = "{name}"',
            'host = "127.0.0.1"',
            f'user = "{self.user}"',
            f"port = {extra.pop('port', self.port)}",
            f'identity_file = "{extra.pop("identity_file", self.key)}"',
            f'ssh_options = ["UserKnownHostsFile={self.known_hosts}", "StrictHostKeyChecking=yes"]',
            f'python = "{python}"',
            f'workdir = "{workdir}"',
        ]
        lines += [f"{key} = {value}" for key, value in extra.items()]
        return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def start_sshd(root: Path) -> tuple[subprocess.Popen, Sshd]:
    root.mkdir(parents=True, exist_ok=True)
    host_key, user_key = keygen(root / "host_key"), keygen(root / "user_key")
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"Port {port}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "PidFile none",
                "LogLevel ERROR",
                "MaxSessions 50",
                "MaxStartups 50",
            ]
        )
        + "\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    log = open(root / "sshd.log", "wb")  # noqa: SIM115 - closed with the server
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {(root / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    public = host_key.with_suffix(".pub").read_text().split()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    user = os.environ.get("USER") or __import__("pwd").getpwuid(os.geteuid()).pw_name
    return process, Sshd(port, user, user_key, known_hosts, root)


def stop_sshd(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def device_python(root: Path, with_onnxruntime: bool = True) -> Path:
    """A venv whose site-packages links only what onnxruntime and numpy need (or numpy alone)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    target = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    ours = Path(sysconfig.get_paths()["purelib"])
    names = DEVICE_PACKAGES if with_onnxruntime else ("numpy", "numpy.libs")
    for name in names:
        if (ours / name).exists():
            (target / name).symlink_to(ours / name)
    return python
