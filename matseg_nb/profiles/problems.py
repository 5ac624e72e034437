"""Turn pydantic validation errors into one line per problem: ``<json.path>: expected <...>, found <...>``."""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

#: pydantic error type -> what was expected (for type errors).
EXPECTED_TYPE: dict[str, str] = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "none_required": "null",
}

#: pydantic constraint error type -> template over its ``ctx``.
EXPECTED_CONSTRAINT: dict[str, str] = {
    "greater_than": "a number > {gt}",
    "greater_than_equal": "a number >= {ge}",
    "less_than": "a number < {lt}",
    "less_than_equal": "a number <= {le}",
    "too_short": "at least {min_length} item(s)",
    "too_long": "at most {max_length} item(s)",
    "string_too_short": "a string of at least {min_length} character(s)",
    "string_too_long": "a string of at most {max_length} character(s)",
    "string_pattern_mismatch": "a string matching {pattern}",
    "literal_error": "one of {expected}",
}


def json_path(loc: tuple | list) -> str:
    """``("model", "encoders", 2)`` -> ``"model.encoders[2]"``; the empty location is ``"$"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


def describe(value: Any, limit: int = 60) -> str:
    """Short JSON rendering of a found value with its JSON type, e.g. ``"16" (a string)``."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object", type(None): "null"}
    if isinstance(value, list) and not value:
        return "an empty list"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    kind = kinds.get(type(value), type(value).__name__)
    return text if value is None else f"{text} ({kind})"


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside ``X``, ``list[X]``, ``X | None`` or ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def model_at(root: type[BaseModel], loc: tuple | list) -> type[BaseModel] | None:
    """The model class that holds the field at ``loc`` (``loc`` without that last key)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        model = _unwrap_model(field.annotation) if field else None
    return model


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _unknown_key(root: type[BaseModel], loc: tuple) -> str:
    key = str(loc[-1])
    parent = model_at(root, loc[:-1])
    if parent is None:
        return f"expected a known key, found unknown key {key!r}"
    keys = _keys(parent)
    hits = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    hint = f" (did you mean {hits[0]!r}?)" if hits else ""
    return f"expected one of the keys {', '.join(keys)}, found unknown key {key!r}{hint}"


def _literal_hint(kind: str, ctx: dict, value: Any) -> str:
    """`` (did you mean 'metals'?)`` for a near miss of a literal choice."""
    if kind != "literal_error" or not isinstance(value, str):
        return ""
    options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
    lowered = {o.lower(): o for o in options}
    hits = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.75)
    return f" (did you mean {lowered[hits[0]]!r}?)" if hits else ""


def format_error(root: type[BaseModel], err: dict) -> str:
    """One pydantic error dict -> ``"<json.path>: expected ..., found ..."``."""
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    path = json_path(loc)
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{path}: {_unknown_key(root, loc)}"
    if kind == "missing":
        return f"{path}: expected a value (required key), found nothing"
    if kind in ("value_error", "assertion_error"):
        msg = str(ctx.get("error", err["msg"]))
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        if not loc and re.match(r"^[\w.\[\]]+: expected ", msg):  # a whole-profile check naming its own path
            return msg
        return f"{path}: {msg}" if "expected" in msg else f"{path}: expected {msg}, found {describe(value)}"
    if kind in EXPECTED_TYPE:
        return f"{path}: expected {EXPECTED_TYPE[kind]}, found {describe(value)}"
    if kind in EXPECTED_CONSTRAINT:
        try:
            expected = EXPECTED_CONSTRAINT[kind].format(**ctx)
            expected = expected.replace("1 item(s)", "one item").replace("a string of at least 1 character(s)", "a non-empty string")
        except (KeyError, IndexError):
            expected = err["msg"]
        return f"{path}: expected {expected}, found {describe(value)}{_literal_hint(kind, ctx, value)}"
    return f"{path}: expected {err['msg'][:1].lower()}{err['msg'][1:]}, found {describe(value)}"


def format_validation_error(root: type[BaseModel], exc: ValidationError) -> list[str]:
    """All problems of ``exc`` as lines, in document order, without duplicates."""
    lines = [format_error(root, e) for e in exc.errors(include_url=False)]
    return list(dict.fromkeys(lines))
