"""Write an output folder completely or not at all.

Every command that produces a folder builds it in a hidden sibling (same file system, so the final
``rename`` is atomic) and only renames it into place when the work is complete. A crash, Ctrl-C or
SIGTERM removes the sibling; a SIGKILL leaves it behind, named after the dead process, and the next
run that writes beside it sweeps it away. ``--out`` itself never holds a half-written artifact.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from codir_edge.core.errors import InputError

_TMP_MARK = ".tmp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _open_permissions(root: Path) -> None:
    """mkdtemp makes 0700 folders and some writers make 0600 files; a finished artifact gets the
    permissions an ordinary ``mkdir`` and ``open`` would have given it."""
    mask = _current_umask()
    os.chmod(root, 0o777 & ~mask)
    for path in root.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _sweep_stale(parent: Path, name: str) -> None:
    """Remove staging folders of ``name`` left by processes that no longer exist (SIGKILL, power loss)."""
    prefix = f".{name}{_TMP_MARK}"
    for entry in parent.glob(f"{prefix}*"):
        pid_part = entry.name[len(prefix) :].split("-", 1)[0]
        if pid_part.isdigit() and not _pid_alive(int(pid_part)):
            shutil.rmtree(entry, ignore_errors=True)


def check_output_dir(out: Path, overwrite: bool, option: str = "--out") -> None:
    """Refuse an existing output (unless overwriting) or an unwritable parent before any expensive work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{option} {out} is a file, not a folder: choose a folder path")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{option} {out} already exists and is not empty: pass --overwrite or choose another folder")
    parent = out.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{option} {out} lies inside the file {probe}: choose a folder path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{option} {out} is not writable ({probe} denies writing): choose a folder you can write to")


@contextlib.contextmanager
def staged_output_dir(out: Path, overwrite: bool = False, option: str = "--out") -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``out``, on any exception it is removed."""
    out = Path(out)
    check_output_dir(out, overwrite, option)
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {parent} for {option} ({exc.strerror}): choose a writable folder") from exc
    _sweep_stale(parent, out.name)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP_MARK}{os.getpid()}-", dir=parent))
    try:
        yield staging
        _open_permissions(staging)
        final = parent / out.name
        if overwrite and final.exists():
            # Move the old artifact aside first so that a failure between the two renames never
            # leaves the user with neither version.
            backup = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP_MARK}{os.getpid()}-old-", dir=parent))
            backup.rmdir()
            final.rename(backup)
            staging.rename(final)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            _rename_unless_taken(staging, final, out, option)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _rename_unless_taken(staging: Path, final: Path, out: Path, option: str) -> None:
    """The rename that publishes an output, refused when another run published one at ``final``
    since this one started: rename(2) onto a non-empty folder fails, atomically, so two runs with the
    same ``--out`` can never both succeed with one silently replacing the other."""
    try:
        staging.rename(final)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise
        raise InputError(
            f"{option} {out} already exists and is not empty (another run finished first; it is left as it was): "
            "pass --overwrite or choose another folder"
        ) from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file by rename so a reader never sees half of it (JSON reports, checkpoints' metadata),
    with the permissions ``open`` would have given it (mkstemp's are 0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{_TMP_MARK}", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
