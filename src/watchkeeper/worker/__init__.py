"""The worker: takes jobs its zones allow, runs them with `watchkeeper.worker.executors`."""

from __future__ import annotations
