"""The command groups: ``worker-key``, ``user``, ``infra`` and ``deploy``.

Each leaf names its implementation in `watchkeeper.commands` by reference
(`watchkeeper.cli.dispatch`), so registering a group imports nothing of it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.cli.dispatch import command
from watchkeeper.cli.flags import client_args, format_arg, store_args
from watchkeeper.jobs.states import JobState

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[Any]

#: The roles of `watchkeeper.web.security.roles.Role`, lowest first (a test holds them
#: equal); spelled out because importing the web package costs every command 0.8 s.
ROLE_NAMES = ("viewer", "operator", "admin")


def add_keys(sub: Subparsers) -> None:
    """``keys`` (print the host key's fingerprint) and ``keys export|import FILE``."""
    p = sub.add_parser(
        "keys",
        help="print the manager's SSH host key fingerprint (creates it); export or import it",
    )
    store_args(p)
    p.set_defaults(func=command("keys_cmds:host_key"))
    actions = p.add_subparsers(dest="keys_command", metavar="ACTION")
    k = actions.add_parser(
        "export", help="write the host key (private, 0600) to FILE, for the other managers"
    )
    k.add_argument("file", metavar="FILE", help="where to write it; - for standard output")
    k.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    _data_dir_here(k)
    k.set_defaults(func=command("keys_cmds:host_key_export"))
    k = actions.add_parser(
        "import", help="install FILE (from `keys export`) as this data dir's host key"
    )
    k.add_argument("file", metavar="FILE", help="a host key `keys export` wrote")
    k.add_argument(
        "--force", action="store_true", help="replace a different host key already there"
    )
    _data_dir_here(k)
    k.set_defaults(func=command("keys_cmds:host_key_import"))


def _data_dir_here(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` after the action too; unset, the one before it (or its default) holds."""
    parser.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help="as before the action"
    )


def add_worker_key(sub: Subparsers) -> None:
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
    format_arg(wk)
    store_args(wk)
    wk.set_defaults(func=command("keys_cmds:worker_key_add"))
    wk = wk_sub.add_parser("list", help="list enrolled worker keys")
    format_arg(wk)
    store_args(wk)
    wk.set_defaults(func=command("keys_cmds:worker_key_list"))
    wk = wk_sub.add_parser("revoke", help="revoke a worker key; a running manager drops it")
    wk.add_argument("name")
    store_args(wk)
    wk.set_defaults(func=command("keys_cmds:worker_key_revoke"))
    wk = wk_sub.add_parser("pending", help="list the agent keys deploys brought back, unapproved")
    format_arg(wk)
    store_args(wk)
    wk.set_defaults(func=command("keys_cmds:worker_key_pending"))
    for name, helptext in (
        ("approve", "enrol HOST's pending agent key for HOST's zone, as HOST's agent"),
        ("reject", "refuse HOST's pending agent key for good (kept as a revoked key)"),
    ):
        wk = wk_sub.add_parser(name, help=helptext)
        wk.add_argument("host", metavar="HOST", help="the deployed host (worker-key pending)")
        format_arg(wk)
        store_args(wk)
        wk.set_defaults(func=command(f"keys_cmds:worker_key_{name}"))


def add_user(sub: Subparsers) -> None:
    """``user add|list|passwd|remove`` and ``user token add|list|revoke``."""
    p = sub.add_parser("user", help="manage web and API users and their API tokens")
    users = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    u = users.add_parser("add", help="add a user; prints a generated password once")
    u.add_argument("name", metavar="NAME", help="the user name (login)")
    u.add_argument("--role", required=True, choices=ROLE_NAMES, help="what the user may do")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    format_arg(u)
    store_args(u)
    u.set_defaults(func=command("user_cmds:user_add"))

    u = users.add_parser("list", help="list users")
    format_arg(u)
    store_args(u)
    u.set_defaults(func=command("user_cmds:user_list"))

    u = users.add_parser("passwd", help="set a password (generated and printed once by default)")
    u.add_argument("name", metavar="NAME")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    store_args(u)
    u.set_defaults(func=command("user_cmds:user_passwd"))

    u = users.add_parser("remove", help="remove a user with its sessions and tokens")
    u.add_argument("name", metavar="NAME")
    store_args(u)
    u.set_defaults(func=command("user_cmds:user_remove"))

    t = users.add_parser("token", help="API tokens of users")
    tokens = t.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    a = tokens.add_parser("add", help="make an API token for NAME; prints it once")
    a.add_argument("name", metavar="NAME", help="the token's owner")
    a.add_argument("--token-name", required=True, help="what the token is for, e.g. grafana")
    a.add_argument(
        "--role", choices=ROLE_NAMES, default=None, help="at most the owner's (default: that)"
    )
    a.add_argument("--expires", default=None, help="lifetime such as 30d or 12h (default: none)")
    format_arg(a)
    store_args(a)
    a.set_defaults(func=command("user_cmds:token_add"))
    a = tokens.add_parser("list", help="list API tokens (without their secrets)")
    a.add_argument("name", metavar="NAME", nargs="?", default=None, help="only NAME's tokens")
    format_arg(a)
    store_args(a)
    a.set_defaults(func=command("user_cmds:token_list"))
    a = tokens.add_parser("revoke", help="revoke an API token by its id")
    a.add_argument("id", metavar="ID", type=int, help="the token's id, from `user token list`")
    store_args(a)
    a.set_defaults(func=command("user_cmds:token_revoke"))


def add_infra(sub: Subparsers) -> None:
    """The ``infra`` group: a running manager's plans, changes and operators' asks."""
    p = sub.add_parser(
        "infra", help="the infrastructure of a running manager: plans, changes, operators' asks"
    )
    infra = p.add_subparsers(dest="infra_command", required=True, metavar="ACTION")

    a = infra.add_parser("plan", help="each platform's last plan, and a held document")
    client_args(a)
    a.set_defaults(func=command("infra_cmds:plan"))

    a = infra.add_parser("apply", help="observe and plan now (closes open breakers)")
    a.add_argument(
        "--only", action="extend", nargs="+", default=[], metavar="NAME",
        help="only these resources (repeat or list several)",
    )  # fmt: skip
    client_args(a)
    a.set_defaults(func=command("infra_cmds:apply"))

    for name, helptext in (
        ("confirm", "run a change that waits for an operator"),
        ("skip", "leave a pending change undone"),
    ):
        a = infra.add_parser(name, help=helptext)
        a.add_argument("id", metavar="ID", type=int, help="the change's id (infra operations)")
        client_args(a)
        a.set_defaults(func=command(f"infra_cmds:{name}"))

    for name, metavar, helptext in (
        ("unprotect", "TARGET", "lift protection from a machine (a slot or a cloud id)"),
        ("adopt", "TARGET", "take ownership of a lookalike machine (its cloud id)"),
        ("accept", "PLATFORM", "trust a platform's observation that saw nothing"),
    ):
        a = infra.add_parser(name, help=helptext)
        a.add_argument("target", metavar=metavar)
        client_args(a)
        a.set_defaults(func=command(f"infra_cmds:{name}"))

    a = infra.add_parser("confirm-hold", help="put the held infrastructure in force")
    client_args(a)
    a.set_defaults(func=command("infra_cmds:confirm_hold"))

    a = infra.add_parser("operations", help="the journal of changes, newest first")
    a.add_argument(
        "--state", action="extend", nargs="+", default=[], metavar="STATE",
        choices=[s.value for s in JobState], help="only changes in these states",
    )  # fmt: skip
    a.add_argument("--resource", default=None, help="only this resource's changes")
    a.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    client_args(a)
    a.set_defaults(func=command("infra_cmds:operations"))


def add_deploy(sub: Subparsers) -> None:
    """The ``deploy`` group: a running manager's deployments."""
    p = sub.add_parser(
        "deploy", help="the deployments of a running manager: each host's last run, check, apply"
    )
    deploy = p.add_subparsers(dest="deploy_command", required=True, metavar="ACTION")

    a = deploy.add_parser("status", help="each deployment's policy, halt and hosts' last runs")
    a.add_argument("name", metavar="NAME", nargs="?", default=None, help="only this deployment")
    client_args(a)
    a.set_defaults(func=command("deploy_cmds:status"))

    for name, helptext in (
        ("check", "a check-mode run (the plan) now, whatever `every` says"),
        ("apply", "a check, then an apply of what it finds; resumes a halted rollout"),
    ):
        a = deploy.add_parser(name, help=helptext)
        a.add_argument("name", metavar="NAME", help="the deployment")
        a.add_argument("--host", default=None, metavar="HOST", help="only this host")
        client_args(a)
        a.set_defaults(func=command(f"deploy_cmds:{name}"))


def add_cluster(sub: Subparsers) -> None:
    """The ``cluster`` group: the managers of an active/standby cluster."""
    p = sub.add_parser("cluster", help="the managers of a cluster (`manager --ha`)")
    cluster = p.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    a = cluster.add_parser(
        "status", help="who leads, at which term; every manager's heartbeat; recent terms"
    )
    client_args(a)
    a.set_defaults(func=command("cluster_cmds:status"))
