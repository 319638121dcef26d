"""Framing and messages of the job protocol, without sockets."""

from __future__ import annotations

import pytest

from watchkeeper.jobs.payloads import CheckPayload
from watchkeeper.results import CheckOutcome, CheckState, Metric
from watchkeeper.transport import protocol
from watchkeeper.transport.errors import ProtocolError

JOB = protocol.Job(
    job_id="j-1",
    zone="dmz",
    payload=CheckPayload(key="web1!http", check={"kind": "tcp", "port": 80}, address="10.0.0.1"),
    deadline=1_000.0,
    token=7,
    requires={"role": "web"},
)

MESSAGES: list[protocol.Message] = [
    protocol.Hello(name="w1", version="0.1", labels={"a": "b"}, zones=["dmz"], concurrency=4),
    protocol.Welcome(name="w1", zones=["dmz"], heartbeat_interval=5.0),
    JOB,
    protocol.Result(
        job_id="j-1",
        token=7,
        state=2,
        output="CRITICAL",
        metrics=[protocol.WireMetric(label="time", value=0.5, uom="s", warn="1")],
        started=1.0,
        finished=2.0,
    ),
    protocol.Heartbeat(in_flight=3, load=0.4, accepting=False, reason="load 3 per core > 2"),
    protocol.Drain(reason="SIGTERM"),
    protocol.Error(code="protocol_error", message="bad frame"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_every_message_round_trips(message: protocol.Message) -> None:
    frame = protocol.encode(message)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert protocol.FrameDecoder().feed(frame) == [message]


def test_frames_split_anywhere_are_reassembled() -> None:
    stream = b"".join(protocol.encode(m) for m in MESSAGES)
    decoder = protocol.FrameDecoder()
    got: list[protocol.Message] = []
    for i in range(len(stream)):
        got += decoder.feed(stream[i : i + 1])
    assert got == MESSAGES
    assert decoder.pending == 0


def test_a_partial_frame_waits_for_the_rest() -> None:
    frame = protocol.encode(JOB)
    decoder = protocol.FrameDecoder()
    assert decoder.feed(frame[:-1]) == []
    assert decoder.pending == len(frame) - 1
    assert decoder.feed(frame[-1:]) == [JOB]


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"not json", "malformed message"),
        (b'{"type": "launch"}', "malformed message"),
        (b'{"type": "heartbeat"}', "in_flight"),
        (
            b'{"type": "result", "job_id": "x", "token": 1, "state": 4, "output": "",'
            b' "started": 0, "finished": 0}',
            "state",
        ),
        (b'{"type": "hello", "name": "w", "version": "1", "extra": 1}', "extra"),
    ],
)
def test_malformed_payloads_are_protocol_errors(payload: bytes, match: str) -> None:
    frame = len(payload).to_bytes(4, "big") + payload
    with pytest.raises(ProtocolError, match=match):
        protocol.FrameDecoder().feed(frame)


def test_an_oversized_length_is_refused_before_its_payload_arrives() -> None:
    header = (protocol.MAX_FRAME + 1).to_bytes(4, "big")
    with pytest.raises(ProtocolError, match="outside"):
        protocol.FrameDecoder().feed(header)


def test_an_empty_frame_is_refused() -> None:
    with pytest.raises(ProtocolError, match="outside"):
        protocol.FrameDecoder().feed(b"\x00\x00\x00\x00")


def test_encoding_refuses_a_message_over_the_cap() -> None:
    huge = protocol.Error(code="x", message="a" * protocol.MAX_FRAME)
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.encode(huge)


def test_results_carry_an_outcome_both_ways() -> None:
    outcome = CheckOutcome(
        state=CheckState.WARNING,
        output="DISK WARNING",
        long_output="/ 81%",
        metrics=(Metric(label="/", value=81.0, uom="%", warn="80", crit="90", min=0, max=100),),
        duration=0.25,
    )
    result = protocol.Result.from_outcome(JOB, outcome, started=10.0, finished=10.25)
    assert (result.job_id, result.token, result.state) == ("j-1", 7, 1)
    decoded = protocol.FrameDecoder().feed(protocol.encode(result))[0]
    assert isinstance(decoded, protocol.Result)
    assert decoded.outcome() == outcome
