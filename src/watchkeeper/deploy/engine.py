"""The deployment engine: pyinfra converging one host, in a process of its own.

    python -m watchkeeper.deploy.engine  < EngineSpec JSON  > Report JSON

pyinfra runs on gevent, which must patch the standard library before anything else is
imported; the deploy worker is asyncio. So the worker never imports this module's
pyinfra side: it spawns this module with the spec on stdin and reads one JSON report on
stdout (`watchkeeper.worker.deploy`). Nothing here parses the document; the items
(`watchkeeper.deploy.items`) are already plain.

Check mode (``dry``) asks each operation whether it *would* change anything (pyinfra
computes that from facts, without running it); apply runs them. Either way the report
lists what would change or changed, in the plan's words ("install agent 0.2.0, replacing
0.1.0", "change /etc/motd"), with a diff for world-readable files.

Host keys: the known_hosts file is the one truth. ``strict`` refuses a host not in it,
``accept-new`` records a host never seen; a key that differs from the recorded one is
refused by both (paramiko's BadHostKeyException), and reported as ``host-key``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import io
import json
import sys
from collections.abc import Callable
from typing import Any

from watchkeeper.deploy.items import (
    AGENT_ENV,
    AGENT_ETC,
    AGENT_KEY,
    AGENT_UNIT,
    AgentItem,
    Item,
    describe,
)

#: Files larger than this get no diff in the plan (the change is still listed).
DIFF_MAX_BYTES = 64 * 1024
#: Lines of diff per file, at most.
DIFF_MAX_LINES = 60


def main() -> int:
    from gevent import monkey

    monkey.patch_all()
    spec = json.loads(sys.stdin.read())
    try:
        report = converge(spec)
    except Exception as exc:
        report = failure("engine", f"{type(exc).__name__}: {exc}")
    sys.stdout.write(json.dumps(report))
    sys.stdout.flush()
    return 0


def failure(kind: str, error: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error_kind": kind, "error": error, "changes": [], **extra}


def _connect_errors() -> Any:
    """A pyinfra state callback that keeps each connection error's text in ``errors``."""
    from pyinfra.api.state import BaseStateCallback

    class ConnectErrors(BaseStateCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.errors: list[str] = []

        def host_connect_error(self, state: Any, host: Any, error: Any) -> None:
            self.errors.append(str(error))

    return ConnectErrors()


def _error_kind(text: str) -> str:
    lowered = text.lower()
    if "host key" in lowered or "known_hosts" in lowered or "badhostkey" in lowered:
        return "host-key"
    if "authentication" in lowered or "permission denied" in lowered:
        return "auth"
    return "unreachable"


def converge(spec: dict[str, Any]) -> dict[str, Any]:
    """Connect, gather facts, add the operations; run them unless ``dry``; report."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.exceptions import PyinfraError

    dry = bool(spec["dry"])
    data = {
        "ssh_hostname": spec["address"],
        "ssh_port": int(spec["port"]),
        "ssh_user": spec["user"],
        "ssh_key": spec["key_file"],
        "ssh_known_hosts_file": spec["known_hosts"],
        "ssh_strict_host_key_checking": "yes" if spec["policy"] == "strict" else "accept-new",
        "ssh_config_file": "/dev/null",  # hermetic: the worker's ~/.ssh/config decides nothing
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
        "ssh_paramiko_connect_kwargs": {"timeout": float(spec["connect_timeout"])},
    }
    inventory = Inventory(([(spec["host"], data)], {}))
    state = State(inventory, Config(CONNECT_TIMEOUT=int(spec["connect_timeout"]) or 1))
    errors = _connect_errors()
    state.add_callback_handler(errors)
    with contextlib.suppress(PyinfraError):  # "No hosts remaining!": the callback says why
        connect_all(state)
    host = inventory.get_host(spec["host"])
    if not host.connected:
        text = "; ".join(errors.errors) or "could not connect"
        return failure(_error_kind(text), f"cannot connect to {spec['address']}: {text}")
    try:
        return _Deploy(state, host, dry).run(spec)
    finally:
        disconnect_all(state)


class _Deploy:
    """One connected host: facts, then one pyinfra operation per item."""

    def __init__(self, state: Any, host: Any, dry: bool) -> None:
        self.state, self.host, self.dry = state, host, dry
        #: (description, operation meta, how to diff it): pyinfra runs them in this order.
        self.ops: list[tuple[str, Any, Callable[[], str] | None]] = []
        self.facts: dict[str, str] = {}

    def output(self, command: str) -> str:
        """A command's standard output (it must exit 0: end it with ``|| true``)."""
        from pyinfra.facts.server import Command

        return str(self.host.get_fact(Command, command=command) or "").strip()

    def add(
        self,
        description: str,
        op: Any,
        *args: Any,
        diff: Callable[[], str] | None = None,
        **kwargs: Any,
    ) -> None:
        from pyinfra.api.operation import add_op

        metas = add_op(self.state, op, *args, host=self.host, **kwargs)
        self.ops.append((description, metas[self.host], diff))

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.facts = self._probe(spec)
        agent = spec.get("agent")
        if agent is not None:
            problem = self._agent(AgentItem(**agent))
            if problem:
                return failure("host", problem, facts=self.facts)
        for index, raw in enumerate(spec.get("items", [])):
            self._item(index, Item(**raw))
        if self.dry:
            changes = [
                (d, diff)
                for d, meta, diff in self.ops
                if d and _will_change(self.state, self.host, meta)
            ]
            report = self._report(spec, [d for d, _ in changes])
            report["diffs"] = {d: text for d, diff in changes if diff and (text := diff())}
            return report
        from pyinfra.api.exceptions import PyinfraError
        from pyinfra.api.operations import run_ops

        with contextlib.suppress(PyinfraError):  # a failed operation fails the host: below
            run_ops(self.state)
        changed, failed = [], []
        for description, meta, _ in self.ops:
            if not meta.is_complete() or not meta.did_succeed(_raise_if_not_complete=False):
                detail = meta.stderr.strip().splitlines()[-1:] if meta.is_complete() else []
                what = description or "upload the agent's wheels"
                failed.append(f"{what}: {detail[0] if detail else 'did not run'}")
            elif description and meta.did_change():
                changed.append(description)
        report = self._report(spec, changed)
        if failed:
            report.update(ok=False, error_kind="apply", error="; ".join(failed))
        return report

    def _report(self, spec: dict[str, Any], changes: list[str]) -> dict[str, Any]:
        report: dict[str, Any] = {
            "ok": True,
            "error": "",
            "error_kind": "",
            "changes": changes,
            "diffs": {},
            "facts": {k: v for k, v in self.facts.items() if not k.startswith("_")},
        }
        if spec.get("agent") is not None and not self._failed():
            fresh = self.output(f"cat {AGENT_KEY}.pub 2>/dev/null || true; echo; echo .")
            key = fresh.strip().removesuffix(".").strip()
            report["agent_key"] = " ".join(key.split()[:2]) if key else ""
            report["agent_version"] = (
                self.output(f"cat {spec['agent']['path']}/VERSION 2>/dev/null || true; echo .")
                .removesuffix(".")
                .strip()
            )
        return report

    def _probe(self, spec: dict[str, Any]) -> dict[str, str]:
        """Every fact this module decides on, in one command (one round trip): the host's
        Python, init and OS, the agent's state, and each command's guards (``_``-named)."""
        probes = {
            "python": "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'",
            "init": "test -d /run/systemd/system && echo systemd || echo none",
            "os": '. /etc/os-release && echo "$PRETTY_NAME"',
        }
        agent = spec.get("agent")
        if agent is not None:
            path = agent["path"]
            probes |= {
                "agent_version": f"cat {path}/VERSION",
                "_agent_dir": f"test -e {path} && echo yes",
                "_agent_key": f"test -e {AGENT_KEY} && echo yes",
                "_agent_env": f"sha256sum {AGENT_ENV} | cut -c1-64",
                "_agent_running": f"{path}/agent-service status >/dev/null && echo yes",
            }
        for index, raw in enumerate(spec.get("items", [])):
            if raw.get("creates"):
                probes[f"_creates_{index}"] = f"test -e {_quote(raw['creates'])} && echo yes"
            if raw.get("unless"):
                probes[f"_unless_{index}"] = f"( {raw['unless']} ) >/dev/null && echo yes"
        script = "; ".join(
            f'printf "%s=%s\\n" {name} "$( ( {command} ) 2>/dev/null | head -n1)"'
            for name, command in probes.items()
        )
        found = dict.fromkeys(probes, "")
        for line in self.output(f"{script}; true").splitlines():
            name, _, value = line.partition("=")
            if name in found:
                found[name] = value.strip()
        return found

    def _failed(self) -> bool:
        """Whether an operation failed: pyinfra then has no host left to ask facts of."""
        return any(meta.is_complete() and not meta.did_succeed() for _, meta, _ in self.ops)

    # --- the agent --------------------------------------------------------------------------

    def _agent(self, agent: AgentItem) -> str:
        """The agent's operations; a reason it cannot be installed here, or ""."""
        from pyinfra.operations import files, server

        path = agent.path
        installed = self.facts.get("agent_version", "")
        systemd = self.facts["init"] == "systemd"
        service = f"{path}/agent-service"
        if agent.state == "absent":
            if installed or self.facts.get("_agent_dir"):
                stop = (
                    f"systemctl disable --now {AGENT_UNIT} 2>/dev/null || true; "
                    f"rm -f /etc/systemd/system/{AGENT_UNIT}.service"
                    if systemd
                    else f"{service} stop 2>/dev/null || true"
                )
                self.add(
                    describe(agent, installed=installed),
                    server.shell,
                    name="remove the agent",
                    commands=[f"{stop}; rm -rf {path} {AGENT_ENV} {AGENT_KEY} {AGENT_KEY}.pub"],
                )
            return ""
        if installed != agent.version:
            if not self.facts["python"]:
                return "the host has no python3; the agent needs Python " + agent.python
            if agent.python and self.facts["python"] != agent.python:
                return (
                    f"the host has Python {self.facts['python']}; this worker's wheelhouse is "
                    f"for Python {agent.python}"
                )
            venv = f"{path}/venv"
            self.add(
                "",
                files.put,
                src=agent.wheelhouse,
                dest=f"{path}/wheelhouse.tar",
                mode="0600",
                create_remote_dir=True,
            )  # fmt: skip (part of the install below, not a change of its own)
            self.add(
                describe(agent, installed=installed),
                server.shell,
                name="install the agent",
                commands=[
                    f"set -e; rm -rf {path}/wheels {path}/VERSION; mkdir -p {path}/wheels",
                    f"tar -xf {path}/wheelhouse.tar -C {path}/wheels",
                    f"python3 -m venv --without-pip --clear {venv}",
                    f"{venv}/bin/python $(ls -d {path}/wheels/pip-*.whl | head -n1)/pip "
                    "install -q --no-index --no-cache-dir --disable-pip-version-check "
                    f"--find-links {path}/wheels watchkeeper=={agent.version}",
                    f"printf '%s\\n' {agent.version} > {path}/VERSION",
                    f"rm -rf {path}/wheels {path}/wheelhouse.tar",
                ],
            )
        if not self.facts.get("_agent_key"):
            self.add(
                "create the agent's key",
                server.shell,
                name="agent key",
                commands=[
                    f"mkdir -p -m 0700 {AGENT_ETC}",
                    f"{path}/venv/bin/watchkeeper keygen {AGENT_KEY}",
                ],
            )
        wanted = hashlib.sha256(agent.env.encode()).hexdigest()
        env_changes = self.facts.get("_agent_env") != wanted
        self.add(
            f"change {AGENT_ENV}",
            files.put,
            src=io.StringIO(agent.env),
            dest=AGENT_ENV,
            mode="0600",
            user="root",
            group="root",
        )
        restart = installed != agent.version or env_changes
        if systemd:
            self._agent_systemd(agent, restart)
        else:
            self._agent_service_script(agent, restart)
        return ""

    def _agent_systemd(self, agent: AgentItem, restart: bool) -> None:
        from pyinfra.operations import files, systemd

        unit = (
            "[Unit]\nDescription=Watchkeeper agent\nAfter=network-online.target\n\n"
            f"[Service]\nEnvironmentFile={AGENT_ENV}\n"
            f"ExecStart={agent.path}/venv/bin/watchkeeper worker\n"
            "Restart=always\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n"
        )
        self.add(
            f"change /etc/systemd/system/{AGENT_UNIT}.service",
            files.put,
            src=io.StringIO(unit),
            dest=f"/etc/systemd/system/{AGENT_UNIT}.service",
            mode="0644",
        )
        self.add(
            f"start agent service {AGENT_UNIT}",
            systemd.service,
            service=AGENT_UNIT,
            running=True,
            enabled=True,
            restarted=restart,
            daemon_reload=True,
        )

    def _agent_service_script(self, agent: AgentItem, restart: bool) -> None:
        """Hosts without systemd (containers): a small start/stop script with a pidfile."""
        from pyinfra.operations import files, server

        service = f"{agent.path}/agent-service"
        self.add(
            f"change {service}",
            files.put,
            src=io.StringIO(service_script(agent.path)),
            dest=service,
            mode="0755",
        )
        if restart:
            self.add(
                "restart the agent", server.shell, name="restart the agent",
                commands=[f"{service} restart"],
            )  # fmt: skip
        elif not self.facts.get("_agent_running"):
            self.add(
                "start the agent", server.shell, name="start the agent",
                commands=[f"{service} start"],
            )  # fmt: skip

    # --- packages, files, commands, services ------------------------------------------------

    def _item(self, index: int, item: Item) -> None:
        from pyinfra.operations import apt, files, server

        if item.kind == "package":
            self.add(
                describe(item), apt.packages, packages=[item.name],
                present=item.state == "present",
            )  # fmt: skip
        elif item.kind == "file":
            self.add(
                describe(item),
                files.put,
                src=io.StringIO(item.content),
                dest=item.name,
                mode=item.mode,
                user=item.owner,
                group=item.group,
                create_remote_dir=True,
                diff=functools.partial(self._diff, item),
            )
        elif item.kind == "command":
            if self.facts.get(f"_creates_{index}") or self.facts.get(f"_unless_{index}"):
                return  # its guard says it has been done
            self.add(describe(item), server.shell, commands=[item.name])
        elif item.kind == "service":
            self.add(
                describe(item), server.service, service=item.name, running=item.running,
                enabled=item.enabled,
            )  # fmt: skip

    def _diff(self, item: Item) -> str:
        """A unified diff of a world-readable file's content (never of a private one)."""
        if int(item.mode, 8) & 0o004 == 0 or len(item.content) > DIFF_MAX_BYTES:
            return ""
        current = self.output(
            f"head -c {DIFF_MAX_BYTES + 1} {_quote(item.name)} 2>/dev/null || true; echo ."
        ).removesuffix(".")
        lines = list(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                item.content.splitlines(keepends=True),
                fromfile=item.name,
                tofile=item.name,
            )
        )
        if len(lines) > DIFF_MAX_LINES:
            lines = [*lines[:DIFF_MAX_LINES], f"... {len(lines) - DIFF_MAX_LINES} more lines\n"]
        return "".join(lines)


def _will_change(state: Any, host: Any, meta: Any) -> bool:
    """Whether an operation would run a command: pyinfra asks its facts, runs nothing."""
    from pyinfra.context import ctx_host, ctx_state

    with ctx_state.use(state), ctx_host.use(host):
        return bool(meta.will_change)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def service_script(path: str) -> str:
    """start|stop|restart|status of the agent on a host without systemd (a pidfile)."""
    return f"""#!/bin/sh
# written by watchkeeper deploy: the agent's service on a host without systemd
PIDFILE=/run/watchkeeper-agent.pid
LOG=/var/log/watchkeeper-agent.log
running() {{ [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }}
start() {{
  running && return 0
  set -a; . {AGENT_ENV}; set +a
  setsid {path}/venv/bin/watchkeeper worker >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
}}
stop() {{
  running && kill "$(cat "$PIDFILE")"
  i=0; while running && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  running && kill -9 "$(cat "$PIDFILE")"
  rm -f "$PIDFILE"
}}
case "$1" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) running ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
"""


if __name__ == "__main__":
    sys.exit(main())
