"""How a worker protects itself: sensors that say whether it should take more work.

Each sensor answers ``(ok, reason)``. *Volatile* sensors (in-flight count) are asked on
every job start and finish: while one says no the worker accepts nothing new. The others
read the system (``/proc``: load, memory) and are asked once per heartbeat; while one says
no the worker is *under pressure* and offers fewer slots (`pressured_capacity`, a quarter
of its concurrency, at least one) instead of none. A monitoring worker that stops checking
when its machine is busy goes blind exactly when it is needed (the load check itself could
not run), and a zone with one worker would lose every check; fewer checks at once eases
the machine and keeps them coming. The heartbeat carries the offered capacity and the
reason (``load 3.2 per core > 2.0``), so the manager sends no more than that, prefers the
zone's other workers, and an operator sees why.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerLoad:
    """What sensors may read of the worker itself."""

    in_flight: int
    concurrency: int


class Sensor(Protocol):
    """One pressure signal."""

    #: Asked on every job start and finish (cheap); otherwise once per heartbeat.
    volatile: ClassVar[bool]

    def check(self, load: WorkerLoad) -> tuple[bool, str]: ...


def load_per_core() -> float:
    """The one-minute load average divided by the number of cores."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)


class InFlightSensor:
    """No more jobs than the worker runs at once."""

    volatile: ClassVar[bool] = True

    def check(self, load: WorkerLoad) -> tuple[bool, str]:
        if load.in_flight >= load.concurrency:
            return False, f"{load.in_flight} jobs in flight, concurrency {load.concurrency}"
        return True, ""


class LoadSensor:
    """The machine's one-minute load average per core stays under a limit."""

    volatile: ClassVar[bool] = False

    def __init__(self, max_per_core: float = 2.5, read: Callable[[], float] = load_per_core):
        self.max_per_core = max_per_core
        self._read = read

    def check(self, load: WorkerLoad) -> tuple[bool, str]:
        value = self._read()
        if value > self.max_per_core:
            return False, f"load {value:.2f} per core > {self.max_per_core:g}"
        return True, ""


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """``MemAvailable`` in bytes, or None where the kernel does not say."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class MemorySensor:
    """Enough memory is available to start another check process."""

    volatile: ClassVar[bool] = False

    def __init__(
        self,
        min_available: int = 128 * 1024 * 1024,
        read: Callable[[], int | None] = available_memory,
    ):
        self.min_available = min_available
        self._read = read

    def check(self, load: WorkerLoad) -> tuple[bool, str]:
        value = self._read()
        if value is not None and value < self.min_available:
            mib = 1024 * 1024
            return False, (f"{value // mib} MiB memory available < {self.min_available // mib} MiB")
        return True, ""


def default_sensors(
    *, max_load_per_core: float = 2.5, min_available: int = 128 * 1024 * 1024
) -> list[Sensor]:
    """In-flight count, load per core and available memory, with the worker's limits."""
    return [
        InFlightSensor(),
        LoadSensor(max_per_core=max_load_per_core),
        MemorySensor(min_available=min_available),
    ]


#: The share of its slots a worker under pressure still offers.
PRESSURE_SHARE = 0.25


def pressured_capacity(concurrency: int) -> int:
    """The slots a worker of ``concurrency`` offers while a system sensor says no."""
    return max(1, int(concurrency * PRESSURE_SHARE))


def evaluate(sensors: Sequence[Sensor], load: WorkerLoad) -> tuple[bool, str]:
    """All sensors' verdict: ok, or the first refusal's reason."""
    for sensor in sensors:
        ok, reason = sensor.check(load)
        if not ok:
            return False, reason
    return True, ""
