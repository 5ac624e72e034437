"""Workspace confinement for paths typed by users (dashboard, report CLI).

A user path is resolved *inside* a workspace folder; ``..`` escapes, absolute paths outside the
workspace and symlinks whose target leaves it are refused with a :class:`UserError`.
"""

from __future__ import annotations

import os
from pathlib import Path

from matseg_nb.errors import UserError


def resolve_in_workspace(workspace: str | os.PathLike, user_path: str | os.PathLike) -> Path:
    """Return the absolute, symlink-resolved path of ``user_path`` inside ``workspace``.

    Relative paths are taken relative to the workspace; absolute paths are accepted only when
    they already lie inside it. The path need not exist (its existing parents are resolved, so a
    symlinked parent pointing outside is caught). Raises ``UserError`` naming the path otherwise.
    """
    root = Path(workspace).expanduser().resolve()
    text = str(user_path).strip()
    if not text:
        raise UserError("path: expected a path inside the workspace, found an empty string")
    if "\x00" in text:
        raise UserError(f"path {text!r}: expected a path inside the workspace, found a NUL byte")
    raw = Path(text).expanduser()
    candidate = raw if raw.is_absolute() else root / raw
    resolved = candidate.resolve(strict=False)
    if resolved != root and root not in resolved.parents:
        raise UserError(
            f"path {text!r}: expected a path inside the workspace {root}, found one outside it ({resolved})"
        )
    return resolved


def is_in_workspace(workspace: str | os.PathLike, user_path: str | os.PathLike) -> bool:
    """``True`` when :func:`resolve_in_workspace` accepts ``user_path``."""
    try:
        resolve_in_workspace(workspace, user_path)
    except UserError:
        return False
    return True
