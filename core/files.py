"""Writing files and folders so that a failure never leaves something that
looks finished: a temporary file or folder beside the target, moved into
place in one step (same file system, so the move is atomic)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable

from core.errors import BadInputError


class OutputExistsError(BadInputError):
    """The output path exists (and overwriting was not asked for) or is the original."""


def atomic_write(target: str | Path, write: Callable, *, overwrite: bool) -> Path:
    """Call write(binary_file) on a temporary file beside `target`, then move it
    into place. Without `overwrite`, an existing target is never replaced (a
    hard link makes the final step fail rather than clobber a file that
    appeared meanwhile). The temporary file never survives a failure."""
    target = Path(target)
    folder = target.parent
    if not folder.is_dir():
        raise BadInputError(f"{target}: folder {folder} does not exist")
    if target.is_dir():
        raise BadInputError(f"{target}: is a folder")
    if not overwrite and target.exists():
        raise OutputExistsError(f"{target}: already exists; choose another name or allow overwriting")
    tmp = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
    try:
        # os.open with 0o666 lets the umask decide permissions, as for any new file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise BadInputError(f"{target}: cannot write in {folder} ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            _move_no_clobber(tmp, target)
    except BaseException as exc:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, FileExistsError):
            raise BadInputError(f"{target}: could not write ({exc.strerror or exc})") from exc
        if isinstance(exc, ValueError):  # an encoder refusing the pixels
            raise BadInputError(f"{target}: could not encode ({exc})") from exc
        raise
    return target


def _move_no_clobber(tmp: Path, target: Path) -> None:
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OutputExistsError(f"{target}: already exists; choose another name or allow overwriting") from None
    except OSError:
        # File systems without hard links: the check above is the best we can do.
        if target.exists():
            raise OutputExistsError(f"{target}: already exists; choose another name or allow overwriting") from None
        os.replace(tmp, target)
        return
    tmp.unlink()


def temp_folder_beside(out: Path) -> Path:
    """A new empty folder next to `out` (same filesystem, so the final rename
    is atomic), hidden, made with the user's umask like any mkdir."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    work.mkdir()
    return work


def publish(work: Path, out: Path) -> None:
    """Rename the finished temp folder to `out` (absent or empty: callers check)."""
    if out.exists():
        out.rmdir()
    work.rename(out)
