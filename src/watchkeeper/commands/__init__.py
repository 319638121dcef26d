"""Implementations of the CLI commands; `watchkeeper.cli` only parses and dispatches."""

from __future__ import annotations
