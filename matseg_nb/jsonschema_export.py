"""JSON Schema export shared by the profile and manifest models (a test checks each committed copy)."""

from __future__ import annotations

import json

from pydantic import BaseModel

SCHEMA_BASE_ID = "https://github.com/matseg-nb/matseg-nb/"


def json_schema(model: type[BaseModel], repo_path: str) -> dict:
    """Draft 2020-12 JSON Schema of ``model``, keys by alias, ``$id`` = the committed file's repo path."""
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_BASE_ID + repo_path
    return schema


def json_schema_text(model: type[BaseModel], repo_path: str) -> str:
    """:func:`json_schema` as stable text (sorted keys, trailing newline)."""
    return json.dumps(json_schema(model, repo_path), indent=2, sort_keys=True) + "\n"
