"""Where ``profile`` measures: this machine (``local``) or devices reached over SSH, from a TOML file.

    [[device]]
    name = "pi5"                          # what budgets and reports call it
    host = "pi5.lan"                      # an SSH destination or a ~/.ssh/config alias
    user = "ci"                           # optional, like port, identity_file, ssh_options
    port = 22
    identity_file = "~/.ssh/edge_ci"      # relative paths are read from this file's folder
    ssh_options = ["StrictHostKeyChecking=yes"]   # extra -o values, before codir-edge's own
    python = "/home/ci/venv/bin/python"   # default python3; needs onnxruntime and numpy
    workdir = "~/.cache/codir-edge"       # the device-side cache (content-addressed)
    env = { OMP_WAIT_POLICY = "PASSIVE" } # set for every command on the device

``--device ssh://user@host:port`` measures one device without a file. Unknown keys and malformed
values are errors that cite the line, as for budgets.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from codir_edge.core.errors import InputError
from codir_edge.core.toml_tables import Where, check_unique, read_tables, read_text

LOCAL = "local"
DEFAULT_WORKDIR = "~/.cache/codir-edge"
KEYS = {"name", "host", "user", "port", "identity_file", "ssh_options", "python", "workdir", "env"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@\-]*$")


@dataclass(frozen=True)
class Device:
    """One place to measure. ``host`` None is this machine, measured with this interpreter."""

    name: str
    host: str | None = None
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    ssh_options: tuple[str, ...] = ()
    python: str = "python3"
    workdir: str = DEFAULT_WORKDIR
    env: dict[str, str] = field(default_factory=dict)
    line: int = 0

    @property
    def is_local(self) -> bool:
        return self.host is None

    @property
    def address(self) -> str:
        """``user@host:port`` as messages show it."""
        if self.is_local:
            return "this machine"
        return (f"{self.user}@" if self.user else "") + self.host + (f":{self.port}" if self.port else "")


LOCAL_DEVICE = Device(LOCAL, python=sys.executable)


def _string(table: dict, key: str, at: Where, required: bool = False) -> str | None:
    value = table.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{at(key)}: {key} must be a non-empty string, found {value!r}: fix the devices file")
    return value


def _port(value: object, at: Where) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InputError(f"{at('port')}: port must be a whole number from 1 to 65535, found {value!r}")
    return value


def _ssh_options(value: object, at: Where) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and re.match(r"^\w+\s*[= ]\s*\S", v) for v in value):
        raise InputError(
            f'{at("ssh_options")}: ssh_options must be a list of "Key=value" strings, like '
            f'["ProxyJump=bastion"], found {value!r}'
        )
    return tuple(value)


def _env(value: object, at: Where) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f'{at("env")}: env must be a table, like env = {{ OMP_NUM_THREADS = "1" }}')
    env = {}
    for key, item in value.items():
        if (
            not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key)
            or isinstance(item, bool)
            or not isinstance(item, (str, int, float))
        ):
            raise InputError(f"{at('env')}: env {key} = {item!r} must name a variable and give a string or number")
        env[key] = str(item)
    return env


def _identity(value: str | None, at: Where, folder: Path) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    path = path if path.is_absolute() else folder / path
    if not path.is_file():
        raise InputError(f"{at('identity_file')}: identity_file {path} does not exist: fix the path")
    return str(path)


def parse_devices(text: str, source: str = "devices", folder: Path = Path(".")) -> list[Device]:
    devices: list[Device] = []
    for table, at, line in read_tables(text, "device", source, "the devices file"):
        for key in table:
            if key not in KEYS:
                raise InputError(f"{at(key)}: unknown key '{key}' (allowed: {', '.join(sorted(KEYS))})")
        name = _string(table, "name", at, required=True)
        if name == LOCAL or not NAME.match(name):
            raise InputError(
                f"{at('name')}: device name '{name}' is reserved or has spaces or symbols: use letters, digits, . _ -"
            )
        devices.append(
            Device(
                name=name,
                host=_string(table, "host", at, required=True),
                user=_string(table, "user", at),
                port=_port(table.get("port"), at),
                identity_file=_identity(_string(table, "identity_file", at), at, folder),
                ssh_options=_ssh_options(table.get("ssh_options"), at),
                python=_string(table, "python", at) or "python3",
                workdir=_string(table, "workdir", at) or DEFAULT_WORKDIR,
                env=_env(table.get("env"), at),
                line=line,
            )
        )
    check_unique([d.name for d in devices], source, "devices")
    return devices


def read_devices(path: Path) -> list[Device]:
    return parse_devices(read_text(path, "--devices"), str(path), Path(path).resolve().parent)


def from_url(url: str) -> Device:
    """``ssh://[user@]host[:port]``: one device without a file, named as written after ``ssh://``."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != "ssh" or not parts.hostname or port == -1 or parts.path not in ("", "/") or parts.query:
        raise InputError(f"--device {url} is not ssh://[user@]host[:port]: write it like ssh://ci@10.0.0.7:22")
    return Device(url[len("ssh://") :].rstrip("/"), host=parts.hostname, user=parts.username, port=port)


def select_devices(devices_file: Path | None, wanted: list[str] | None) -> list[Device]:
    """The devices to measure, in the order asked: every device in the file when none is named,
    ``local`` when there is no file either."""
    known = read_devices(devices_file) if devices_file is not None else []
    if not wanted:
        return known or [LOCAL_DEVICE]
    chosen: list[Device] = []
    by_name = {d.name: d for d in known}
    for name in wanted:
        if name == LOCAL:
            device = LOCAL_DEVICE
        elif name.startswith("ssh://"):
            device = from_url(name)
        elif name in by_name:
            device = by_name[name]
        elif devices_file is None:
            raise InputError(
                f"--device {name} is not a known device: pass --devices devices.toml, or use local or ssh://user@host"
            )
        else:
            raise InputError(
                f"--device {name} is not in {devices_file} (devices: {', '.join(by_name) or 'none'}): "
                "fix the name or add a [[device]] table"
            )
        if device.name not in [d.name for d in chosen]:
            chosen.append(device)
    return chosen
