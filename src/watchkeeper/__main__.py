"""``python -m watchkeeper`` is the same as the ``watchkeeper`` command."""

from __future__ import annotations

import sys

from watchkeeper.cli import main

sys.exit(main())
