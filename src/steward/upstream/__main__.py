"""`python -m steward.upstream --port N`: serve the wire-compatible model upstream.

Point an OpenAI client at `http://HOST:PORT/v1` and an Anthropic client at `http://HOST:PORT`.
"""

from __future__ import annotations

import argparse

from steward.upstream.app import serve_upstream


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m steward.upstream",
        description="Scripted, fault-injecting OpenAI- and Anthropic-compatible model server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    serve_upstream(args.host, args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
