"""One JSON reader and one JSON round trip for the package's typed results and settings (dataclasses).

:func:`read_json` (None when absent or unreadable) and :func:`read_json_object` (None when absent, a
one-line error when unreadable or not an object) are the package's JSON file readers; the one other parser
is :func:`matseg_nb.profiles.loader.parse_json`, for profiles, whose errors name the line and column.

``class Foo(JsonRecord)`` on a dataclass gives ``to_dict()`` (JSON-ready: tuples become lists, nested
dataclasses become dicts) and ``from_dict(data)`` (the inverse: lists become tuples where the field is a
tuple, nested ``JsonRecord`` fields are rebuilt, unknown keys are ignored so older readers accept newer
files, missing keys take the field's default).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from typing import Any

from matseg_nb.errors import UserError


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float (numbers from JSON, CSV cells, strings); None when it is missing, null,
    a bool, NaN/inf or not a number. The package's one lenient number parser."""
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def jsonable(value: Any) -> Any:
    """``value`` ready for :func:`json.dumps`: dict keys as strings, tuples as lists, NumPy scalars and
    arrays as Python numbers and lists, NaN/inf as None (JSON has no non-finite numbers)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return finite_float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    return value


def read_json(path: str | os.PathLike) -> Any:
    """Parsed JSON of ``path``; None when it is absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def read_json_object(path: str | os.PathLike, error: type[Exception] | None = None) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when absent; ``error`` (default ``matseg_nb.errors.UserError``)
    with one line "expected a JSON object, found ..." when it is unreadable or not an object."""
    error = error or UserError
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: expected a JSON object, found unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _typed(hint: Any, value: Any) -> Any:
    """``value`` (from JSON) as the field type ``hint`` asks: tuple, nested JsonRecord, or as is."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is not type(None):
                converted = _typed(arg, value)
                if converted is not value:
                    return converted
        return value
    if isinstance(hint, type) and issubclass(hint, JsonRecord) and isinstance(value, dict):
        return hint.from_dict(value)
    if (origin is tuple or hint is tuple) and isinstance(value, list):
        return tuple(value)
    return value


class JsonRecord:
    """Mixin for dataclasses: :meth:`to_dict` / :meth:`from_dict` JSON round trip."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (tuples as lists, nested dataclasses as dicts)."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """The record from :meth:`to_dict` output; unknown keys are ignored, missing ones take defaults."""
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _typed(hints.get(k), v) for k, v in data.items() if k in names})
