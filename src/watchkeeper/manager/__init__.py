"""The manager role: takes candidates from sources, imports them, serves the API."""

from __future__ import annotations
