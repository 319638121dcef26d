"""The one CLI for every role: ``watchkeeper validate|schema|plan|import|up|manager|...``.

Exit codes: 0 success; 1 the document is invalid (or was rejected); 2 wrong arguments, a
source that cannot be read, or a store that cannot be reached. Every flag can also come
from the environment; ``--help`` names the variable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from watchkeeper import __version__, logs
from watchkeeper.commands import (
    config_cmds,
    deploy_cmds,
    infra_cmds,
    keys_cmds,
    run_cmds,
    user_cmds,
)
from watchkeeper.errors import WatchkeeperError

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _env_arg(
    parser: argparse.ArgumentParser, *flags: str, env: str, default: Any = None, **kw: Any
) -> None:
    """Add a flag whose default comes from ``WATCHKEEPER_<env>``; help shows the variable."""
    var = f"WATCHKEEPER_{env}"
    kind = kw.get("type", str)
    value = os.environ.get(var)
    kw["default"] = kind(value) if value is not None else default
    kw["help"] = f"{kw.get('help', '')} [env {var}]".strip()
    parser.add_argument(*flags, **kw)


def _store_args(parser: argparse.ArgumentParser) -> None:
    _env_arg(
        parser,
        "--data-dir",
        env="DATA_DIR",
        type=Path,
        default=Path(".watchkeeper"),
        help="directory for the SQLite database, keys and tokens (default ./.watchkeeper)",
    )
    _env_arg(
        parser,
        "--database",
        env="DATABASE",
        help="database URL, e.g. postgresql+psycopg://user@host/db (default: SQLite in the "
        "data dir)",
    )


def _source_args(parser: argparse.ArgumentParser) -> None:
    _env_arg(
        parser,
        "--max-bytes",
        env="SOURCE_MAX_BYTES",
        type=int,
        default=64 * 1024 * 1024,
        help="refuse documents larger than this (default 64 MiB)",
    )
    _env_arg(
        parser,
        "--timeout",
        env="SOURCE_TIMEOUT",
        type=float,
        default=10.0,
        help="seconds to wait for an http(s) source (default 10)",
    )
    _env_arg(
        parser,
        "--bearer-token",
        env="SOURCE_BEARER_TOKEN",
        help="secret reference (env:NAME or file:/path) of a bearer token for the source",
    )


def _format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _stage_args(parser: argparse.ArgumentParser) -> None:
    """Telemetry retention and the remediation limit: the manager's own settings."""
    for flag, env, default, what in (
        ("--retention-raw", "RETENTION_RAW", "48h", "raw telemetry points"),
        ("--retention-5m", "RETENTION_5M", "30d", "5-minute telemetry buckets"),
        ("--retention-1h", "RETENTION_1H", "400d", "hourly telemetry buckets"),
    ):
        _env_arg(
            parser,
            flag,
            env=env,
            default=default,
            metavar="DURATION",
            help=f"how long {what} are kept (default {default})",
        )
    _env_arg(
        parser,
        "--remediation-concurrency",
        env="REMEDIATION_CONCURRENCY",
        type=int,
        default=10,
        metavar="N",
        help="remediation actions running at once over every rule (default 10)",
    )
    _env_arg(
        parser,
        "--keep-versions",
        env="KEEP_VERSIONS",
        type=int,
        default=100,
        metavar="N",
        help="configuration versions always kept: the last N (default 100)",
    )
    _env_arg(
        parser,
        "--keep-versions-for",
        env="KEEP_VERSIONS_FOR",
        default="90d",
        metavar="DURATION",
        help="and every version younger than this (default 90d); the current one, and "
        "any the running configuration still comes from, are never pruned",
    )


class _CommandParser(argparse.ArgumentParser):
    """A command's parser that names an unknown option before a missing argument.

    argparse checks required arguments first, so ``validate --bogus`` said "the following
    arguments are required: source" and never mentioned the typo.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._subparsers is None:  # a leaf command: every option is its own
            unknown = []
            for arg in args or ():
                if arg == "--":
                    break
                name = arg.split("=", 1)[0]
                if arg.startswith("-") and arg != "-" and not arg[1:2].isdigit():
                    known = self._option_string_actions
                    prefix = name.startswith("--") and any(o.startswith(name) for o in known)
                    if name not in known and not prefix:  # argparse takes --form for --format
                        unknown.append(arg)
            if unknown:
                self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchkeeper",
        description="Operations platform driven by one desired-state JSON document.",
    )
    parser.add_argument("--version", action="version", version=f"watchkeeper {__version__}")
    _env_arg(
        parser,
        "--log-level",
        env="LOG_LEVEL",
        default=None,
        choices=("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR"),
        help="log level (default NOTICE for up, INFO for manager and worker, WARNING otherwise)",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )

    p = sub.add_parser("validate", help="check a document; print every problem with its pointer")
    p.add_argument("source", help="a file path, - for standard input, or an http(s) URL")
    _format_arg(p)
    _source_args(p)
    p.set_defaults(func=config_cmds.validate)

    p = sub.add_parser("schema", help="print the JSON Schema of the document")
    p.add_argument("--format", choices=("json", "markdown"), default="json")
    p.set_defaults(func=config_cmds.schema)

    p = sub.add_parser("plan", help="show what an import would add, change and remove")
    p.add_argument("source", help="a file path, - for standard input, or an http(s) URL")
    _format_arg(p)
    _source_args(p)
    _store_args(p)
    p.set_defaults(func=config_cmds.plan)

    p = sub.add_parser("import", help="validate and import a document once")
    p.add_argument("source", help="a file path, - for standard input, or an http(s) URL")
    _format_arg(p)
    _source_args(p)
    _store_args(p)
    p.set_defaults(func=config_cmds.import_)

    p = sub.add_parser("versions", help="list imported configuration versions")
    _format_arg(p)
    _store_args(p)
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=config_cmds.versions)

    p = sub.add_parser("rejections", help="list rejected candidates with their problems")
    _format_arg(p)
    _store_args(p)
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=config_cmds.rejections)

    p = sub.add_parser("db", help="database maintenance")
    db_sub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="apply database migrations (safe to repeat)")
    _store_args(up)
    up.set_defaults(func=config_cmds.db_upgrade)

    p = sub.add_parser("keys", help="print the manager's SSH host key fingerprint (creates it)")
    _store_args(p)
    p.set_defaults(func=keys_cmds.host_key)

    p = sub.add_parser(
        "worker-key", help="enrol, list and revoke worker SSH keys; approve agents' keys"
    )
    wk_sub = p.add_subparsers(dest="worker_key_command", required=True, metavar="ACTION")
    wk = wk_sub.add_parser("add", help="enrol a worker's public key for zones")
    wk.add_argument("name", help="the worker's name (unique)")
    wk.add_argument("--zones", required=True, help="zones the key may serve: a,b")
    wk.add_argument("--public-key", required=True, help="the worker's OpenSSH .pub file")
    wk.add_argument("--labels", default=None, help="labels the key carries: k=v,k2=v2")
    wk.add_argument(
        "--agent-for",
        default=None,
        metavar="HOST",
        help="enrol as HOST's agent: it runs HOST's agent checks and nothing else",
    )
    _format_arg(wk)
    _store_args(wk)
    wk.set_defaults(func=keys_cmds.worker_key_add)
    wk = wk_sub.add_parser("list", help="list enrolled worker keys")
    _format_arg(wk)
    _store_args(wk)
    wk.set_defaults(func=keys_cmds.worker_key_list)
    wk = wk_sub.add_parser("revoke", help="revoke a worker key; a running manager drops it")
    wk.add_argument("name")
    _store_args(wk)
    wk.set_defaults(func=keys_cmds.worker_key_revoke)
    wk = wk_sub.add_parser("pending", help="list the agent keys deploys brought back, unapproved")
    _format_arg(wk)
    _store_args(wk)
    wk.set_defaults(func=keys_cmds.worker_key_pending)
    for name, helptext, func in (
        (
            "approve",
            "enrol HOST's pending agent key for HOST's zone, as HOST's agent",
            keys_cmds.worker_key_approve,
        ),
        (
            "reject",
            "refuse HOST's pending agent key for good (kept as a revoked key)",
            keys_cmds.worker_key_reject,
        ),
    ):
        wk = wk_sub.add_parser(name, help=helptext)
        wk.add_argument("host", metavar="HOST", help="the deployed host (worker-key pending)")
        _format_arg(wk)
        _store_args(wk)
        wk.set_defaults(func=func)

    user_cmds.add_parsers(sub, _store_args)
    infra_cmds.add_parsers(sub)
    deploy_cmds.add_parsers(sub)

    for name, helptext in (
        ("up", "manager and embedded worker in one process, on the bundled example by default"),
        ("manager", "run the manager: poll a source, import, serve the API"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "up":
            p.add_argument(
                "source",
                nargs="?",
                default=None,
                help="document path or URL (default: the bundled examples/demo.json)",
            )
        else:
            _env_arg(
                p,
                "--source",
                env="SOURCE",
                required="WATCHKEEPER_SOURCE" not in os.environ,
                help="document path or http(s) URL to poll",
            )
        _store_args(p)
        _source_args(p)
        _env_arg(
            p,
            "--poll-interval",
            env="POLL_INTERVAL",
            type=float,
            default=30.0,
            help="seconds between polls of the source (default 30)",
        )
        _env_arg(
            p,
            "--http",
            env="HTTP",
            default="127.0.0.1:8470",
            help="address:port of the web interface and API (default 127.0.0.1:8470)",
        )
        _env_arg(
            p,
            "--jobs",
            env="JOBS",
            default="127.0.0.1:4730",
            help="address:port of the SSH job server (default 127.0.0.1:4730; remote workers "
            "need e.g. 0.0.0.0:4730)",
        )
        _env_arg(
            p,
            "--tls-cert",
            env="TLS_CERT",
            type=Path,
            metavar="FILE",
            help="serve HTTPS with this PEM certificate (chain); needs --tls-key",
        )
        _env_arg(
            p,
            "--tls-key",
            env="TLS_KEY",
            type=Path,
            metavar="FILE",
            help="the PEM private key of --tls-cert",
        )
        _stage_args(p)
        p.set_defaults(func=run_cmds.up if name == "up" else run_cmds.manager)

    p = sub.add_parser("worker", help="run checks for a manager: dial its job server over SSH")
    _env_arg(
        p,
        "--manager",
        env="MANAGER",
        required="WATCHKEEPER_MANAGER" not in os.environ,
        help="the manager's job server, HOST:PORT (e.g. manager.example:4730)",
    )
    _env_arg(
        p,
        "--key",
        env="WORKER_KEY",
        required="WATCHKEEPER_WORKER_KEY" not in os.environ,
        help="this worker's private key file (its .pub enrolled with `worker-key add`)",
    )
    _env_arg(
        p,
        "--manager-fingerprint",
        env="MANAGER_FINGERPRINT",
        required="WATCHKEEPER_MANAGER_FINGERPRINT" not in os.environ,
        help="the manager's host key, SHA256:... as `watchkeeper keys` prints it",
    )
    _env_arg(p, "--labels", env="WORKER_LABELS", help="labels shown to operators: k=v,k2=v2")
    _env_arg(
        p,
        "--concurrency",
        env="WORKER_CONCURRENCY",
        type=int,
        default=8,
        help="checks run at once (default 8)",
    )
    _env_arg(
        p,
        "--max-load",
        env="WORKER_MAX_LOAD",
        type=float,
        default=2.5,
        help="run a quarter of --concurrency while the 1-minute load per core is above this "
        "(default 2.5)",
    )
    _env_arg(
        p,
        "--min-memory",
        env="WORKER_MIN_MEMORY",
        type=int,
        default=128,
        help="run a quarter of --concurrency while less memory than this many MiB is available "
        "(default 128)",
    )
    _env_arg(p, "--name", env="WORKER_NAME", help="name in the hello (default: the hostname)")
    _env_arg(
        p,
        "--reconnect-max",
        env="RECONNECT_MAX",
        type=float,
        default=60.0,
        help="longest wait in seconds between redials of the manager (default 60)",
    )
    p.set_defaults(func=run_cmds.worker)

    p = sub.add_parser(
        "keygen", help="create a worker key pair FILE and FILE.pub (ed25519, 0600) if missing"
    )
    p.add_argument("file", type=Path, help="the private key file to create")
    p.set_defaults(func=keys_cmds.keygen)
    return parser


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
