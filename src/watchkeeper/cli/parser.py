"""The command line of every role: ``watchkeeper validate|schema|plan|import|up|manager|...``.

Building it imports no stage of the package: each command names its implementation in
`watchkeeper.commands` (`watchkeeper.cli.dispatch`), imported when it runs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from watchkeeper import __version__
from watchkeeper.cli import groups
from watchkeeper.cli.dispatch import command
from watchkeeper.cli.flags import (
    env_arg,
    env_list_arg,
    format_arg,
    source_args,
    status_file_arg,
    store_args,
)


def _stage_args(parser: argparse.ArgumentParser) -> None:
    """Telemetry retention and the remediation limit: the manager's own settings."""
    for flag, env, default, what in (
        ("--retention-raw", "RETENTION_RAW", "48h", "raw telemetry points"),
        ("--retention-5m", "RETENTION_5M", "30d", "5-minute telemetry buckets"),
        ("--retention-1h", "RETENTION_1H", "400d", "hourly telemetry buckets"),
    ):
        env_arg(
            parser,
            flag,
            env=env,
            default=default,
            metavar="DURATION",
            help=f"how long {what} are kept (default {default})",
        )
    env_arg(
        parser,
        "--remediation-concurrency",
        env="REMEDIATION_CONCURRENCY",
        type=int,
        default=10,
        metavar="N",
        help="remediation actions running at once over every rule (default 10)",
    )
    env_arg(
        parser,
        "--keep-versions",
        env="KEEP_VERSIONS",
        type=int,
        default=100,
        metavar="N",
        help="configuration versions always kept: the last N (default 100)",
    )
    env_arg(
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
    env_arg(
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
    format_arg(p)
    source_args(p)
    p.set_defaults(func=command("config_cmds:validate"))

    p = sub.add_parser("schema", help="print the JSON Schema of the document")
    p.add_argument("--format", choices=("json", "markdown"), default="json")
    p.set_defaults(func=command("config_cmds:schema"))

    p = sub.add_parser("plan", help="show what an import would add, change and remove")
    p.add_argument("source", help="a file path, - for standard input, or an http(s) URL")
    format_arg(p)
    source_args(p)
    store_args(p)
    p.set_defaults(func=command("config_cmds:plan"))

    p = sub.add_parser("import", help="validate and import a document once")
    p.add_argument("source", help="a file path, - for standard input, or an http(s) URL")
    format_arg(p)
    source_args(p)
    store_args(p)
    p.set_defaults(func=command("config_cmds:import_"))

    p = sub.add_parser("versions", help="list imported configuration versions")
    format_arg(p)
    store_args(p)
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=command("config_cmds:versions"))

    p = sub.add_parser("rejections", help="list rejected candidates with their problems")
    format_arg(p)
    store_args(p)
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=command("config_cmds:rejections"))

    p = sub.add_parser("db", help="database maintenance")
    db_sub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="apply database migrations (safe to repeat)")
    store_args(up)
    up.set_defaults(func=command("config_cmds:db_upgrade"))

    groups.add_keys(sub)
    groups.add_worker_key(sub)
    groups.add_user(sub)
    groups.add_infra(sub)
    groups.add_deploy(sub)
    groups.add_cluster(sub)

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
            p.add_argument(
                "--concurrency",
                type=int,
                default=None,
                help="checks the embedded worker runs at once (default 64)",
            )
        else:
            env_arg(
                p,
                "--source",
                env="SOURCE",
                required="WATCHKEEPER_SOURCE" not in os.environ,
                help="document path or http(s) URL to poll",
            )
        store_args(p)
        source_args(p)
        env_arg(
            p,
            "--poll-interval",
            env="POLL_INTERVAL",
            type=float,
            default=30.0,
            help="seconds between polls of the source (default 30)",
        )
        env_arg(
            p,
            "--http",
            env="HTTP",
            default="127.0.0.1:8470",
            help="address:port of the web interface and API (default 127.0.0.1:8470)",
        )
        env_arg(
            p,
            "--jobs",
            env="JOBS",
            default="127.0.0.1:4730",
            help="address:port of the SSH job server (default 127.0.0.1:4730; remote workers "
            "need e.g. 0.0.0.0:4730)",
        )
        env_arg(
            p,
            "--tls-cert",
            env="TLS_CERT",
            type=Path,
            metavar="FILE",
            help="serve HTTPS with this PEM certificate (chain); needs --tls-key",
        )
        env_arg(
            p,
            "--tls-key",
            env="TLS_KEY",
            type=Path,
            metavar="FILE",
            help="the PEM private key of --tls-cert",
        )
        _stage_args(p)
        if name == "manager":
            _cluster_args(p)
        status_file_arg(p, "status.json in the data dir")
        p.set_defaults(func=command(f"run_cmds:{name}"))

    p = sub.add_parser("worker", help="run checks for a manager: dial its job server over SSH")
    env_list_arg(
        p,
        "--manager",
        env="MANAGER",
        required="WATCHKEEPER_MANAGER" not in os.environ,
        metavar="HOST[:PORT][,...]",
        help="the manager's job server (port 4730 by default); for high availability every "
        "manager of the cluster, comma-separated or repeated: on a failure the next is dialled "
        "at once",
    )
    env_arg(
        p,
        "--key",
        env="WORKER_KEY",
        required="WATCHKEEPER_WORKER_KEY" not in os.environ,
        help="this worker's private key file (its .pub enrolled with `worker-key add`)",
    )
    env_list_arg(
        p,
        "--manager-fingerprint",
        env="MANAGER_FINGERPRINT",
        required="WATCHKEEPER_MANAGER_FINGERPRINT" not in os.environ,
        metavar="SHA256:...[,...]",
        help="the manager's host key as `watchkeeper keys` prints it; managers that do not "
        "share one (`keys export|import`): each, comma-separated or repeated",
    )
    env_arg(p, "--labels", env="WORKER_LABELS", help="labels shown to operators: k=v,k2=v2")
    env_arg(
        p,
        "--concurrency",
        env="WORKER_CONCURRENCY",
        type=int,
        default=8,
        help="checks run at once (default 8)",
    )
    env_arg(
        p,
        "--max-load",
        env="WORKER_MAX_LOAD",
        type=float,
        default=2.5,
        help="run a quarter of --concurrency while the 1-minute load per core is above this "
        "(default 2.5)",
    )
    env_arg(
        p,
        "--min-memory",
        env="WORKER_MIN_MEMORY",
        type=int,
        default=128,
        help="run a quarter of --concurrency while less memory than this many MiB is available "
        "(default 128)",
    )
    env_arg(p, "--name", env="WORKER_NAME", help="name in the hello (default: the hostname)")
    env_arg(
        p,
        "--agent-for",
        env="WORKER_AGENT_FOR",
        metavar="HOST",
        help="run as HOST's agent: exit (2) if the manager enrolled the key otherwise "
        "(default: serve whatever the key is enrolled for)",
    )
    env_arg(
        p,
        "--reconnect-max",
        env="RECONNECT_MAX",
        type=float,
        default=60.0,
        help="longest wait in seconds between redials of the manager (default 60)",
    )
    status_file_arg(p, "status.json beside --key")
    p.set_defaults(func=command("worker_cmds:worker"))

    p = sub.add_parser(
        "health",
        help="is the manager or worker of this data dir healthy? (exit 0 yes, 1 no; for a "
        "container's HEALTHCHECK)",
    )
    store_args(p)
    status_file_arg(p, "status.json in the data dir")
    p.add_argument("--request-timeout", type=float, default=5.0, help="seconds (default 5)")
    p.set_defaults(func=command("health_cmds:health"))

    p = sub.add_parser(
        "keygen", help="create a worker key pair FILE and FILE.pub (ed25519, 0600) if missing"
    )
    p.add_argument("file", type=Path, help="the private key file to create")
    p.set_defaults(func=command("keys_cmds:keygen"))
    return parser


def _cluster_args(p: argparse.ArgumentParser) -> None:
    """The flags of a clustered manager (`watchkeeper.cluster`)."""
    p.add_argument(
        "--ha",
        action="store_true",
        default=os.environ.get("WATCHKEEPER_HA", "") not in ("", "0", "false", "no"),
        help="active/standby with the other managers of this PostgreSQL --database: one "
        "leads (job server, stages, polling), the others stand by [env WATCHKEEPER_HA]",
    )
    env_arg(
        p,
        "--node",
        env="NODE",
        default="",
        help="this manager's name in the cluster (default HOSTNAME:HTTP-PORT)",
    )
    env_arg(
        p,
        "--lease",
        env="LEASE",
        default="10s",
        help="how long a silent leader keeps the lead before a standby takes over "
        "(default 10s; at least 3 heartbeats)",
    )
    env_arg(
        p,
        "--cluster-heartbeat",
        env="CLUSTER_HEARTBEAT",
        default="1s",
        help="how often each manager renews its lease or contends for it (default 1s)",
    )
