"""Atomic file writes: write to a temporary sibling, fsync, then ``os.replace``.

A reader (or a sweep resumed after SIGKILL) never sees a half-written file. The file gets the mode a
plain ``open(path, "w")`` would give (``0o666`` less the process umask), not ``tempfile``'s ``0o600``,
so colleagues sharing a group folder can read reports and run folders.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

#: mode of a new file before the umask (what ``open(path, "w")`` uses)
NEW_FILE_MODE = 0o666


def current_umask() -> int:
    """The process umask.

    Read from ``/proc/self/status`` on Linux (no side effect, safe with threads); elsewhere by setting
    and restoring it, since ``os.umask`` has no getter.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """Permission bits a newly created file gets under the current umask, e.g. ``0o644`` for umask 022."""
    return NEW_FILE_MODE & ~current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Serialise ``obj`` as JSON (sorted keys, trailing newline) and write it atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n")
