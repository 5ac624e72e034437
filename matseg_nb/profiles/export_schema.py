"""Export the profile JSON Schema: ``python -m matseg_nb.profiles.export_schema [OUT]``
(default ``profiles/schema.json``; a test fails when the committed copy is stale)."""

from __future__ import annotations

import sys
from pathlib import Path

from matseg_nb.jsonschema_export import json_schema, json_schema_text
from matseg_nb.profiles.schema import Profile

REPO_PROFILES = Path(__file__).resolve().parents[2] / "profiles"
SCHEMA_PATH = REPO_PROFILES / "schema.json"


def export_schema() -> dict:
    """JSON Schema (draft 2020-12) of :class:`Profile`, keys by alias (``$schema``, ``material.class``)."""
    return json_schema(Profile, "profiles/schema.json")


def schema_text() -> str:
    return json_schema_text(Profile, "profiles/schema.json")


def main(argv: list[str] | None = None) -> int:
    """Write the schema to ``profiles/schema.json`` (or the path given) and print the path."""
    from matseg_nb.atomic import atomic_write_text

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else SCHEMA_PATH
    atomic_write_text(out, schema_text())
    print(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
