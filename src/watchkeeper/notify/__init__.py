"""Notifications: what the alarm book and remediation ask to tell people, and the delivery.

    Notification (notification) ──▶ Notifier (notifier: queue, retries with backoff,
                                     delivery log) ──▶ channels/ (webhook, email, command,
                                     third-party ones through an entry point)
                                  └─▶ repository (the delivery log in the store)

Deciding *when* to notify is the deciding stage's job (`watchkeeper.alarms`,
`watchkeeper.remediation`); this package only delivers.
"""

from __future__ import annotations
