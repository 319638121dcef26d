"""JSON or msgpack for the job protocol: encode plus decode of a ~300-byte result message.

Run: ``.venv/bin/python bench/bench_framing.py`` (msgpack must be installed to compare).
Both paths include pydantic validation on decode, as the job server does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from watchkeeper.transport import protocol

N = 50_000


def _message() -> protocol.Result:
    return protocol.Result(
        job_id="0f8e2c1a-5b7d-4c3e-9a1f-2d6b8e4c7a90",
        token=123456,
        state=0,
        output="TCP OK - 0.000 second response time on 127.0.0.1 port 22",
        long_output="",
        metrics=[
            protocol.WireMetric(
                label="time", value=0.000123, uom="s", warn="0.5", crit="2", min=0.0, max=10.0
            ),
        ],
        duration=0.0012,
        started=1_764_000_000.123,
        finished=1_764_000_000.124,
    )


def _best(fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / N


def main() -> None:
    msg = _message()
    frame = protocol.encode(msg)
    decoder = protocol.FrameDecoder()

    def json_round() -> None:
        for _ in range(N):
            decoder.feed(protocol.encode(msg))

    per = _best(json_round)
    print(f"json:    {len(frame) - 4:4d} bytes  {per * 1e6:5.2f} us/msg  {1 / per:9.0f} msg/s")
    try:
        import msgpack  # type: ignore[import-untyped]
    except ImportError:
        print("msgpack: not installed")
        return
    adapter = protocol._ADAPTER
    packed = msgpack.packb(msg.model_dump())

    def msgpack_round() -> None:
        for _ in range(N):
            data = msgpack.packb(msg.model_dump())
            adapter.validate_python(msgpack.unpackb(data))

    per = _best(msgpack_round)
    print(f"msgpack: {len(packed):4d} bytes  {per * 1e6:5.2f} us/msg  {1 / per:9.0f} msg/s")

    import orjson

    plain = msg.model_dump()
    for name, codec in (
        ("orjson dumps+loads", lambda: orjson.loads(orjson.dumps(plain))),
        ("msgpack packb+unpackb", lambda: msgpack.unpackb(msgpack.packb(plain))),
    ):

        def loop(codec: Callable[[], object] = codec) -> None:
            for _ in range(N):
                codec()

        per = _best(loop)
        print(f"raw {name:22s} {per * 1e6:5.2f} us/msg (no validation)")


if __name__ == "__main__":
    main()
