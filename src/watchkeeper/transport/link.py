"""What a worker says about its link to the manager: each change once, reminders while down.

A worker that loses its manager must say so without writing a line per redial: the
backoff redials every few seconds to a minute, for hours if the manager is away. So:

* the link is lost, or the first dial fails: one WARNING with the reason and the backoff,
  or the manager dialled next at once (a worker that knows several);
* the manager asks the worker to log in again (its key's grants changed): INFO lines only,
  unless the new login fails;
* the manager refused the key: one WARNING that says how to enrol it (the public key and
  the command to run on the manager), since no amount of redialling fixes that;
* the failure changes kind (unreachable to refused, say): one WARNING again;
* still down: a reminder every ``remind_every`` seconds, with the tries so far;
* back: one NOTICE with how long it was down and how many tries it took.

Each line names the manager it is about; ``where`` (all of them) is for the reminders.
Pure but for the logger: time comes from the injected ``clock``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import asyncssh

from watchkeeper.logs import NOTICE
from watchkeeper.transport import protocol
from watchkeeper.transport.errors import AuthRefused, TransportError

logger = logging.getLogger("watchkeeper.transport.client")

#: Seconds between reminders while the manager stays unreachable.
REMIND_EVERY = 300.0


def enrol_hint(name: str, zones: tuple[str, ...], key_path: Path) -> str:
    """The command that enrols this worker's key on the manager, with the key itself."""
    try:
        public = asyncssh.read_private_key(key_path).export_public_key().decode().strip()
    except (OSError, ValueError, asyncssh.KeyImportError):
        public = f"the public half of {key_path}"
    zone_list = ",".join(zones) or "ZONE[,ZONE...]"
    return (
        f"to enrol it, run on the manager: watchkeeper worker-key add {name} "
        f"--zones {zone_list} --public-key FILE.pub, where FILE.pub holds: {public}"
    )


class LinkLog:
    """The link's state as the worker last told it; each method logs only on news."""

    def __init__(
        self,
        where: str,
        hint: Callable[[], str],
        *,
        clock: Callable[[], float],
        remind_every: float = REMIND_EVERY,
    ) -> None:
        self._where = where
        self._hint = hint
        self._clock = clock
        self._remind_every = remind_every
        #: When the link went down (or the first dial failed); None while it is up.
        self._down_since: float | None = None
        self._tries = 0
        self._told: type[TransportError] | None = None
        #: The manager asked for this new login: its success is no news either.
        self._asked = False
        self._reminded = 0.0

    def up(self, welcome: protocol.Welcome, where: str | None = None) -> None:
        """Welcomed by ``where``: say connected (first time), logged in again (asked to), or
        reconnected."""
        where = where or self._where
        zones = ", ".join(welcome.zones) or "(none)"
        if self._asked:
            logger.info(
                "logged in again at %s as %s for zones %s",
                where,
                welcome.name,
                zones,
                extra={"action": "worker_relogged"},
            )
        elif self._down_since is None:
            logger.log(
                NOTICE,
                "connected to the manager at %s as %s for zones %s",
                where,
                welcome.name,
                zones,
                extra={"action": "worker_connected"},
            )
        else:
            logger.log(
                NOTICE,
                "reconnected to the manager at %s after %.0f s (%d %s) as %s for zones %s",
                where,
                self._clock() - self._down_since,
                self._tries,
                "try" if self._tries == 1 else "tries",
                welcome.name,
                zones,
                extra={"action": "worker_reconnected"},
            )
        self._down_since, self._tries, self._told, self._asked = None, 0, None, False

    def lost(self, why: str, where: str | None = None, *, then: str | None = None) -> None:
        """A welcomed session with ``where`` ended without an error message from the
        manager; ``then`` is the manager dialled next at once, if any."""
        self._down_since = self._clock()
        self._reminded = self._down_since
        self._asked = False
        logger.warning(
            "lost the manager connection at %s (%s); %s",
            where or self._where,
            why,
            f"trying the manager at {then} now" if then else "redialling with backoff",
            extra={"action": "worker_link_lost"},
        )

    def asked(self, why: str, where: str | None = None) -> None:
        """The manager closed the session for the worker to log in again: news, not trouble."""
        self._down_since = self._reminded = self._clock()
        self._asked = True
        logger.info(
            "the manager at %s asked this worker to log in again (%s)",
            where or self._where,
            why,
            extra={"action": "worker_relogin"},
        )

    def down(self, error: TransportError | None, delay: float, *, then: str | None = None) -> None:
        """A dial (or a session) failed; the next try is in ``delay`` seconds, or at once
        to the manager ``then``."""
        now = self._clock()
        if self._down_since is None:
            self._down_since = self._reminded = now
        if error is None:  # the session ended: `lost` said so
            return
        self._tries += 1
        kind = type(error)
        step = f"trying the manager at {then} now" if then else f"next try in {delay:.1f} s"
        if kind is not self._told:
            self._told, self._reminded = kind, now
            if isinstance(error, AuthRefused):
                logger.warning(
                    "%s: this key is not enrolled, or was revoked; %s (%s)",
                    error.message,
                    self._hint(),
                    step,
                    extra={"action": "worker_key_refused"},
                )
            else:
                logger.warning(
                    "%s; %s",
                    error.message,
                    step if then else f"retrying with backoff ({step})",
                    extra={"action": "worker_link_failing"},
                )
        elif now - self._reminded >= self._remind_every and not then:
            self._reminded = now
            logger.warning(
                "still no connection to the manager at %s after %d tries over %.0f min: %s "
                "(next try in %.0f s)",
                self._where,
                self._tries,
                (now - self._down_since) / 60,
                error.message,
                delay,
                extra={"action": "worker_link_failing"},
            )
        else:
            logger.debug("manager connection failed again: %s", error.message)
