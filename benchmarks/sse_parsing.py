"""Cost of parsing one large SSE event fed in small network-sized chunks, for the agent path's
decoder and the proxy's raw splitter, at two event sizes in the same run.

Baseline: one `bytes.splitlines` pass over the whole stream (the least any parser must do).
Linear parsing shows as a 4x-larger event costing about 4x the time (`*_growth` near 4, where
a parser that rescans its buffer per chunk shows 16), and a steady ratio to the baseline.
Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from steward.models.sse import SSEDecoder, SSEEventSplitter


def _stream(size: int) -> bytes:
    return b"data: " + b"x" * size + b"\n\n"


def _best_of(repeats: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _feed(parser: SSEDecoder | SSEEventSplitter, stream: bytes, chunk: int) -> None:
    for i in range(0, len(stream), chunk):
        parser.feed(stream[i : i + chunk])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--mib", type=int, default=2, help="the smaller event's size in MiB (at most 3)"
    )
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per network read")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    small, large = args.mib << 20, 4 * args.mib << 20
    figures: dict[str, float] = {}
    for label, size in (("small", small), ("large", large)):
        stream = _stream(size)
        chunks = [stream[i : i + args.chunk] for i in range(0, len(stream), args.chunk)]
        baseline = _best_of(args.repeats, stream.splitlines)

        def decode(chunks: list[bytes] = chunks) -> None:
            decoder = SSEDecoder()
            for piece in chunks:
                decoder.feed(piece)

        def split(chunks: list[bytes] = chunks) -> None:
            splitter = SSEEventSplitter()
            for piece in chunks:
                splitter.feed(piece)

        figures[f"decoder_{label}_ms"] = _best_of(args.repeats, decode) * 1000
        figures[f"splitter_{label}_ms"] = _best_of(args.repeats, split) * 1000
        figures[f"decoder_{label}_vs_baseline"] = figures[f"decoder_{label}_ms"] / (baseline * 1000)
    figures["decoder_growth"] = figures["decoder_large_ms"] / figures["decoder_small_ms"]
    figures["splitter_growth"] = figures["splitter_large_ms"] / figures["splitter_small_ms"]
    for name, value in figures.items():
        print(f"{name:28s} {value:10.2f}")
    print(" ".join(f"{name}={value:.2f}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
