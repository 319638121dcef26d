"""The job protocol between the manager's job server and its workers, version 1.

It runs inside one SSH channel, the subsystem ``watchkeeper-jobs@v1``, as frames: a 4-byte
big-endian length, then that many bytes of one JSON object whose ``type`` names the message.
A frame over `MAX_FRAME` bytes, an empty frame, bytes that are not JSON, or JSON that is not
a known message is a `ProtocolError`; the side that sees it sends `Error` and closes that
connection, and only that one.

Conversation::

    worker                              manager
    hello (name, claims, concurrency) ─▶
                                      ◀─ welcome (zones granted by the key, heartbeat)
                                      ◀─ job ... (only for granted zones)
    result (job id + token)           ─▶
    heartbeat (in flight, load,       ─▶  (every interval; at once when ``accepting`` flips)
               accepting + reason)
    drain                             ─▶  (no new jobs; the worker closes when idle)
                                      ◀─ drain (the manager asks the worker to drain)
    error (code, message)             ◀▶  (then the sender closes)

What a worker claims in its hello (zones, labels) is shown to operators and never used to
route: the zones in `Welcome` come from the key the worker authenticated with.

JSON, not msgpack, by measurement (``bench/bench_framing.py``, this 2-core machine, a result
message of 345 bytes as JSON / 291 as msgpack, encode plus decode including pydantic
validation, best of 5, three runs): JSON through pydantic-core 10.0-10.4 us per message,
msgpack 1.1 plus ``validate_python`` 10.1-11.4 us; both ~100k messages/s, a tie within
noise. Bare codecs without validation: orjson 1.8-2.2 us per round trip, msgpack 3.9 us.
Validation dominates, so msgpack's 16% smaller frames do not pay for a new dependency and
unreadable captures. Both are well above what an SSH channel carries (5-50k messages/s),
so the encoding cannot limit throughput.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from watchkeeper.jobs.payloads import Payload
from watchkeeper.results import CheckOutcome, CheckState, Metric
from watchkeeper.transport.errors import ProtocolError

PROTOCOL_VERSION = 1
SUBSYSTEM = "watchkeeper-jobs@v1"
#: The largest frame either side accepts; a bigger length prefix closes the connection
#: before the payload is read, so a peer cannot make us buffer more than this.
MAX_FRAME = 1024 * 1024
HEADER = struct.Struct(">I")
#: Heartbeat intervals of silence after which either end gives the other up: the manager
#: a worker that sent nothing (its jobs move), a worker a manager that answered nothing
#: (it dials the next manager).
MISSED_HEARTBEATS = 3


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Hello(_Message):
    """First message of a worker: who it says it is. Claims are informational only."""

    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    name: str = Field(min_length=1, max_length=128)
    version: str
    labels: dict[str, str] = Field(default_factory=dict)
    zones: list[str] = Field(default_factory=list)
    #: Jobs the worker runs at once; the server never leases it more than this.
    concurrency: int = Field(default=1, ge=1, le=100_000)


class Welcome(_Message):
    """The manager's answer to hello: what this connection may serve."""

    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    #: The enrolled worker name of the key this connection authenticated with.
    name: str
    #: Granted from the key's enrolment, never from the hello.
    zones: list[str]
    labels: dict[str, str] = Field(default_factory=dict)
    #: Set when the key is enrolled as a host's agent: it serves that host's agent checks.
    agent_for: str | None = None
    heartbeat_interval: float = Field(gt=0)


class Job(_Message):
    """Do this once and answer with a `Result` quoting ``job_id`` and ``token``.

    What to do is the typed ``payload`` (`watchkeeper.jobs.payloads`: a check, an action);
    the envelope says who may do it (zone, labels, agent) and by when.
    """

    type: Literal["job"] = "job"
    job_id: str = Field(min_length=1, max_length=128)
    zone: str
    payload: Payload
    #: Epoch seconds; a result after this is ignored by the manager.
    deadline: float
    #: The dispatch token the result must quote (a check's run; 0 for queued jobs).
    token: int = 0
    #: Labels a worker's enrolment must carry to receive this job (``{"role": "web"}``).
    requires: dict[str, str] = Field(default_factory=dict)
    #: An ``agent`` check: only the key enrolled as this host's agent may run it.
    agent: str | None = None
    #: At most once: when its worker is lost mid-job the job is reported lost, never sent to
    #: a peer, because it may have run (remediation actions).
    once: bool = False

    @property
    def timeout(self) -> float:
        """Seconds the work may take on the worker."""
        return self.payload.timeout

    def describe(self) -> str:
        """What the job is, for logs: a check key, or an action and its target."""
        return self.payload.describe()


class WireMetric(_Message):
    """A perfdata value on the wire; see `watchkeeper.results.Metric`."""

    label: str
    value: float
    uom: str = ""
    warn: str | None = None
    crit: str | None = None
    min: float | None = None
    max: float | None = None


class Result(_Message):
    """The outcome of one job, from the worker it was leased to."""

    type: Literal["result"] = "result"
    job_id: str
    token: int
    state: int = Field(ge=0, le=3)
    output: str
    long_output: str = ""
    metrics: list[WireMetric] = Field(default_factory=list)
    duration: float = 0.0
    started: float
    finished: float
    #: Structured facts of an infrastructure job (machines observed or made).
    data: dict[str, Any] | None = None

    @classmethod
    def from_outcome(
        cls, job: Job, outcome: CheckOutcome, *, started: float, finished: float
    ) -> Result:
        return cls(
            job_id=job.job_id,
            token=job.token,
            state=outcome.state.value,
            output=outcome.output,
            long_output=outcome.long_output,
            metrics=[
                WireMetric(
                    label=m.label,
                    value=m.value,
                    uom=m.uom,
                    warn=m.warn,
                    crit=m.crit,
                    min=m.min,
                    max=m.max,
                )
                for m in outcome.metrics
            ],
            duration=outcome.duration,
            started=started,
            finished=finished,
            data=outcome.data,
        )

    def outcome(self) -> CheckOutcome:
        """The domain value the engine interprets."""
        return CheckOutcome(
            state=CheckState(self.state),
            output=self.output,
            long_output=self.long_output,
            metrics=tuple(Metric(**m.model_dump()) for m in self.metrics),
            duration=self.duration,
            data=self.data,
        )


class Heartbeat(_Message):
    """A worker is alive; how many jobs it takes now and, when fewer than usual, why."""

    type: Literal["heartbeat"] = "heartbeat"
    in_flight: int = Field(ge=0)
    #: One-minute load average per core.
    load: float = 0.0
    accepting: bool = True
    #: Jobs the worker runs at once now: its concurrency, or fewer under pressure; None
    #: means its whole concurrency.
    capacity: int | None = Field(default=None, ge=1)
    #: Why it is not accepting, or why it offers less than its concurrency.
    reason: str = ""


class Drain(_Message):
    """From a worker: send me nothing new. From the manager: finish and disconnect."""

    type: Literal["drain"] = "drain"
    reason: str = ""


#: The `Error` code of a manager that closes a session to have the worker log in again at
#: once (its key's grants changed): not a failure, so the worker does not report one.
RECONNECT = "reconnect"


class Error(_Message):
    """The sender is about to close the connection, and why."""

    type: Literal["error"] = "error"
    code: str
    message: str


Message = Annotated[
    Hello | Welcome | Job | Result | Heartbeat | Drain | Error, Field(discriminator="type")
]
_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)


def encode(message: Message) -> bytes:
    """One frame: the length prefix and the message as JSON."""
    payload = _ADAPTER.dump_json(message)
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"{message.type} message of {len(payload)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> Message:
    """One frame's payload as a message; `ProtocolError` if it is not one."""
    try:
        return _ADAPTER.validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ProtocolError(f"malformed message: {where}: {first['msg']}") from exc


class FrameDecoder:
    """Turns a byte stream into messages, however the bytes were split across reads.

    Pure and incremental: `feed` buffers a partial frame and returns every complete one.
    After a `ProtocolError` the stream is out of sync; the caller must close it.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while len(self._buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer)
            if length == 0 or length > self._max_frame:
                raise ProtocolError(
                    f"frame length {length} outside 1..{self._max_frame}; closing the connection"
                )
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[HEADER.size : end])
            del self._buffer[:end]
            messages.append(decode_payload(payload))
        return messages

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buffer)
