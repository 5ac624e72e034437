"""UTC timestamps as ISO-8601 strings (second resolution, ``Z`` suffix)."""

from __future__ import annotations

from datetime import datetime, timezone


def now_iso() -> str:
    """Current UTC time, e.g. ``2026-11-28T18:30:00.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp() -> str:
    """Current UTC time for file names, e.g. ``20261128T183000123456``."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")


def parse_iso(text: str | None) -> datetime | None:
    """Parse a timestamp written by :func:`now_iso` (``None`` passes through)."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_since(text: str | None) -> float | None:
    """Seconds elapsed since an ISO timestamp, or ``None``."""
    start = parse_iso(text)
    return None if start is None else (datetime.now(timezone.utc) - start).total_seconds()
