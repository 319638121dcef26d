"""The one CLI for every role: ``watchkeeper validate|schema|plan|import|up|manager|...``.

Exit codes: 0 success; 1 the document is invalid (or was rejected); 2 wrong arguments, a
source that cannot be read, or a store that cannot be reached. Every flag can also come
from the environment; ``--help`` names the variable.

The parser (`watchkeeper.cli.parser`) is cheap to build; a command's implementation is
imported when it runs (`watchkeeper.cli.dispatch`), so ``--version`` imports nothing of
the stages and ``worker`` nothing of the manager.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from watchkeeper import logs
from watchkeeper.cli.parser import build_parser
from watchkeeper.commands.exits import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from watchkeeper.errors import WatchkeeperError

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # up is read by a person at a terminal: one stream, short lines, NOTICE and up.
    if args.command == "up":
        logs.configure(logs.parse_level(args.log_level or "NOTICE"), "console", stream=sys.stdout)
    else:
        default = "INFO" if args.command in ("manager", "worker") else "WARNING"
        logs.configure(logs.parse_level(args.log_level or default), "daemon", stream=sys.stderr)
    try:
        code: int = asyncio.run(args.func(args))
    except WatchkeeperError as exc:
        print(f"watchkeeper: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
