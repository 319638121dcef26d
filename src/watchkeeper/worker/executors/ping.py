"""The ping executor: the system's iputils ``ping``, run through the plugin machinery.

Why ping and not check_ping: check_ping is itself a wrapper that runs ping and parses it,
so calling ping directly is one process fewer, and thresholds belong to the engine (on the
``rta`` and ``pl`` metrics) rather than to plugin arguments. Metrics are named and scaled
as check_ping's, so thresholds carry over: ``rta`` in ms, ``pl`` in %.

State: OK when any reply came back, CRITICAL when none did (100% loss), UNKNOWN when ping
could not run or could not resolve the name. ICMP needs no privilege on Linux when
``net.ipv4.ping_group_range`` covers the worker's group, or ping has cap_net_raw.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field

from watchkeeper.document.fields import Strict
from watchkeeper.plugins import CHECKS
from watchkeeper.results import CheckOutcome, CheckState, Metric
from watchkeeper.worker.executors.base import SpecExecutor, outcome
from watchkeeper.worker.executors.plugin import DEFAULT_ENV, run_process

_LOSS = re.compile(
    r"(\d+) packets transmitted, (\d+) (?:packets )?received.*?([\d.]+)% packet loss"
)
_RTT = re.compile(r"(?:rtt|round-trip) min/avg/max/(?:mdev|stddev) = [\d.]+/([\d.]+)/")


class PingCheck(Strict):
    """ICMP echo to the host; perfdata rta and pl."""

    kind: Literal["ping"]
    count: Annotated[int, Field(ge=1, le=100)] = 3


@CHECKS.register
class PingExecutor(SpecExecutor[PingCheck]):
    """Sends ``count`` echo requests ``interval`` seconds apart, within the check timeout.

    ``interval`` defaults to ping's own 1s; 0.2s is the shortest an unprivileged user may ask.
    """

    kind: ClassVar[str] = "ping"
    Config: ClassVar[type[BaseModel]] = PingCheck
    label: ClassVar[str] = "PING"

    def __init__(
        self,
        *,
        program: str = "ping",
        interval: float = 1.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._program = program
        self._interval = interval
        self._env = dict(DEFAULT_ENV if env is None else env)

    async def check(
        self,
        spec: PingCheck,
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        if address.startswith("-"):  # would be read as an option, whatever "--" says
            return outcome(CheckState.UNKNOWN, f"PING UNKNOWN - invalid address {address!r}")
        started = time.perf_counter()
        # ping's own deadline (whole seconds) ends it before our kill, so lost packets still
        # give a summary line; the kill at ``timeout`` only catches a ping that hangs.
        deadline = max(1, math.floor(timeout - 0.5))
        argv = [
            self._program,
            "-n",
            "-q",
            "-c",
            str(spec.count),
            "-i",
            f"{self._interval:g}",
            "-w",
            str(deadline),
            "-W",
            str(deadline),
            "--",
            address,
        ]
        try:
            result = await run_process(argv, timeout=timeout, env=self._env, max_output=16384)
        except OSError as exc:
            return outcome(
                CheckState.UNKNOWN,
                f"PING UNKNOWN - cannot run {self._program}: {exc.strerror or exc}",
                duration=time.perf_counter() - started,
            )
        if result.timed_out:
            text = f"PING CRITICAL - timed out after {timeout:g}s pinging {address}"
            return outcome(CheckState.CRITICAL, text, duration=result.duration)
        stdout = result.stdout.decode("utf-8", "replace")
        loss = _LOSS.search(stdout)
        if loss is None:
            why = result.stderr.decode("utf-8", "replace").strip() or stdout.strip()
            why = why.splitlines()[-1] if why else f"exit code {result.returncode}"
            return outcome(CheckState.UNKNOWN, f"PING UNKNOWN - {why}", duration=result.duration)
        return ping_outcome(stdout, duration=result.duration)


def ping_outcome(stdout: str, *, duration: float = 0.0) -> CheckOutcome:
    """Interpret iputils (or BSD) ping's summary; pure, so tests feed it captured text."""
    loss = _LOSS.search(stdout)
    if loss is None:
        return outcome(CheckState.UNKNOWN, "PING UNKNOWN - no ping summary", duration=duration)
    received = int(loss.group(2))
    lost = float(loss.group(3))
    rtt = _RTT.search(stdout)
    metrics = [Metric(label="pl", value=lost, uom="%", min=0.0, max=100.0)]
    if rtt is not None:
        rta = float(rtt.group(1))
        metrics.insert(0, Metric(label="rta", value=rta, uom="ms", min=0.0))
        text = f"Packet loss = {lost:g}%, RTA = {rta:.2f} ms"
    else:
        text = f"Packet loss = {lost:g}%"
    state = CheckState.OK if received > 0 else CheckState.CRITICAL
    return outcome(state, f"PING {state.name} - {text}", metrics=tuple(metrics), duration=duration)
