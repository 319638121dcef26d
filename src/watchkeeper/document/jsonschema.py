"""The published JSON Schema of the document, generated from the models (never hand-edited).

A copy is committed at ``docs/schema/watchkeeper-v1.json``; a test fails when it drifts.
"""

from __future__ import annotations

from typing import Any

import orjson

from watchkeeper.document import models

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``watchkeeper/v1`` document."""
    schema = models.Document.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": DIALECT, **schema}


def json_schema_text() -> str:
    """Stable text form: sorted keys, two-space indent, trailing newline."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    return orjson.dumps(json_schema(), option=options).decode() + "\n"
