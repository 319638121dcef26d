"""The manager's HTTP face: REST API under /api/v1 (the web interface grows here)."""

from __future__ import annotations
