"""Alarms: thresholds, the alarm lifecycle, flapping and downtimes.

state changes, results ──▶ AlarmBook (open / acknowledged / resolved, flapping,
                           downtime, parent suppression) ──▶ Notification ──▶ notify

`thresholds`, `flapping`, `lifecycle` and `values` are pure; `repository` keeps the book
in the store and `service` is the stage that feeds, persists and serves it.
"""

from __future__ import annotations
