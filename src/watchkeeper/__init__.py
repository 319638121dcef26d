"""Watchkeeper: an operations platform driven by one desired-state JSON document."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
