"""The CLI's exit codes: 0 success, 1 invalid (a document, a rejected ask), 2 usage."""

from __future__ import annotations

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
