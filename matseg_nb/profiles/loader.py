"""Load and validate profiles, reporting every problem at once.

Each problem is one line ``<file>: <json.path>: expected <...>, found <...>``; all lines of a profile
are raised together in one :class:`matseg_nb.errors.UserError`. Relative dataset paths and weight files
resolve against the profile's folder and are stored as absolute paths in the returned profile.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from matseg_nb.errors import UserError
from matseg_nb.profiles.identity import ref_problems, resolve_dataset, resolve_weights
from matseg_nb.profiles.problems import format_validation_error
from matseg_nb.profiles.schema import Profile


def _no_duplicates(pairs: list[tuple[str, Any]], duplicates: list[str]) -> dict:
    counts = Counter(key for key, _ in pairs)
    duplicates += [f"key {k!r}: expected each key once per object, found it {n} times" for k, n in counts.items() if n > 1]
    return dict(pairs)


def parse_json(text: str, source: str) -> Any:
    """Parse JSON; syntax errors (with line/column), duplicate keys and NaN/Infinity become UserError lines."""
    duplicates: list[str] = []  # also collects NaN / Infinity
    try:
        data = json.loads(
            text,
            object_pairs_hook=lambda pairs: _no_duplicates(pairs, duplicates),
            parse_constant=lambda name: duplicates.append(f"expected standard JSON numbers, found {name}"),
        )
    except json.JSONDecodeError as err:
        line_text = err.doc.splitlines()[err.lineno - 1] if err.doc.strip() else ""
        found = line_text[err.colno - 1: err.colno + 19] or "end of file"
        raise UserError(
            f"{source}: line {err.lineno}, column {err.colno}: expected valid JSON ({err.msg}), found {found!r}"
        ) from None
    if duplicates:
        raise UserError(*[f"{source}: {d}" for d in duplicates])
    return data


def _resource_problems(data: Any, base_dir: Path | None) -> list[str]:
    """Dataset references and weight files that do not exist (checked on the raw data, so that they are
    reported together with schema problems)."""
    if not isinstance(data, dict):
        return []
    problems: list[str] = []
    entries = data.get("dataset")
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        ref = entry.get("ref") if isinstance(entry, dict) else None
        if isinstance(ref, str) and ref.strip():
            try:
                resolve_dataset(ref, base_dir)
            except UserError as err:
                problems += [f"dataset[{i}].ref: {p}" for p in ref_problems(ref, err, base_dir)]
    model = data.get("model")
    weights = model.get("encoder_weights") if isinstance(model, dict) else None
    if isinstance(weights, str) and weights:
        try:
            resolve_weights(weights, base_dir)
        except ValueError as err:
            problems.append(f"model.encoder_weights: {err}")
    if isinstance(weights, str) and weights.lower() in ("micronet", "imagenet-micronet"):
        from matseg_nb.micronet import micronet_weights_path

        for encoder in model.get("encoders") or []:
            try:
                micronet_weights_path(str(encoder), weights.lower())
            except UserError as err:
                problems.append(f"model.encoder_weights: {err}")
    return problems


def _resolved(profile: Profile, base_dir: Path | None) -> Profile:
    entries = [e.model_copy(update={"ref": resolve_dataset(e.ref, base_dir)[0]}) for e in profile.dataset]
    model = profile.model.model_copy(update={"encoder_weights": resolve_weights(profile.model.encoder_weights, base_dir)})
    return profile.model_copy(update={"dataset": entries, "model": model})


def profile_from_dict(data: Any, base_dir: str | Path | None = None, source: str = "<profile>") -> Profile:
    """Validate parsed JSON data as a profile; raise one UserError listing every problem.

    ``source`` names the document in messages; relative paths resolve against ``base_dir``
    (default: the working directory).
    """
    base = Path(base_dir) if base_dir is not None else None
    problems: list[str] = []
    profile = None
    try:
        profile = Profile.model_validate(data)
    except ValidationError as err:
        problems += format_validation_error(Profile, err)
    problems += _resource_problems(data, base)
    if problems:
        raise UserError(*[f"{source}: {p}" for p in dict.fromkeys(problems)])
    assert profile is not None
    return _resolved(profile, base)


def load_profile(path: str | os.PathLike) -> Profile:
    """Read, validate and resolve a profile JSON file. Raises UserError (one line per problem)."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        found = "a folder" if path.is_dir() else "nothing at that path"
        raise UserError(f"{source}: expected a profile JSON file, found {found}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        bad = err.object[err.start:err.start + 1].hex()
        raise UserError(f"{source}: expected UTF-8 text, found byte 0x{bad} at offset {err.start}") from None
    data = parse_json(text, source)
    profile = profile_from_dict(data, base_dir=path.resolve().parent, source=source)
    profile._source = path.resolve()
    profile._label = source
    return profile
