"""The desired-state document: models, validation, JSON Schema, normalisation and diff."""

from __future__ import annotations
