"""Alarms: thresholds, the alarm lifecycle, flapping, downtimes and notifications.

state changes, results ──▶ AlarmBook (open / acknowledged / resolved, flapping,
                           downtime, parent suppression) ──▶ Notification ──▶ Notifier
                                                             ──▶ channels (webhook,
                                                                 email, command)
"""
