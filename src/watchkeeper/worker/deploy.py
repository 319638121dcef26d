"""How a deploy worker carries out a deploy job: the engine, in a process of its own.

    check   OK "DEPLOY CHECK OK - 2 changes: would install agent 0.2.0; would change
            /etc/motd", data {"changes": [...], "diffs": {...}, "facts": {...}}
    apply   OK "DEPLOY APPLY OK - changed: ...", data as check plus the agent's public key
    either  CRITICAL "DEPLOY CHECK FAILED - host key of 10.0.0.9 changed ..." with
            data {"error_kind": "host-key" | "unreachable" | "auth" | "apply" | ...}

The SSH key is resolved here from its reference and written, for the engine only, to a
private temporary file that is removed when the job ends; its value is scrubbed from
every output. Host keys live in known_hosts beside the worker's own key (or the file the
deployment names): by default the host must be there already (``new_hosts: refuse``),
and a changed key is always refused.
The agent is installed from this installation's wheelhouse (`watchkeeper.deploy.wheelhouse`)
and only at the manager's version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from watchkeeper.deploy import wheelhouse
from watchkeeper.deploy.items import AgentItem, DeploySpecError, EngineSpec, agent_env, items_of
from watchkeeper.document.deployments import Deployment
from watchkeeper.errors import SecretError
from watchkeeper.jobs.payloads import DeployPayload
from watchkeeper.private import private_dir
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.secrets import resolve_secret

#: The known_hosts file beside the worker's key, when the deployment names none.
KNOWN_HOSTS = "known_hosts"


class DeployRunner:
    """Runs deploy jobs, each as one engine subprocess (`watchkeeper.deploy.engine`)."""

    def __init__(
        self,
        *,
        state_dir: Path,
        manager: str = "",
        fingerprints: tuple[str, ...] = (),
        wheels: Path | None = None,
        python: str = sys.executable,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: Where known_hosts and the wheelhouse tar live (the worker key's directory).
        self.state_dir = state_dir
        #: The job servers this worker dials, ``host:port`` comma-separated as ``--manager``
        #: takes them: the agent's default managers (all of a cluster's, in this order).
        self.manager = manager
        #: The host keys this worker pins: an agent pins them too, after the one of the
        #: manager that sent the job (for managers of a cluster that do not share a key).
        self.fingerprints = fingerprints
        self._wheels = wheels
        self._python = python
        self._clock = clock

    async def run(self, job: DeployPayload) -> CheckOutcome:
        started = self._clock()
        verb = f"DEPLOY {job.mode.upper()}"
        secrets: list[str] = []
        try:
            outcome = await self._run(job, verb, secrets)
        except (DeploySpecError, SecretError, wheelhouse.WheelhouseError) as exc:
            outcome = _failed(verb, exc.message, "spec")
        outcome = _scrub(outcome, secrets)
        return CheckOutcome(
            state=outcome.state,
            output=outcome.output,
            long_output=outcome.long_output,
            duration=self._clock() - started,
            data=outcome.data,
        )

    async def _run(self, job: DeployPayload, verb: str, secrets: list[str]) -> CheckOutcome:
        try:
            deployment = Deployment.model_validate(job.deployment)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "/".join(str(p) for p in first["loc"])
            return _failed(
                verb, f"the deployment is not valid here: {where}: {first['msg']}", "spec"
            )
        ssh = deployment.ssh
        key = resolve_secret(ssh.key)
        secrets.append(key)
        known_hosts = self._known_hosts(ssh.known_hosts)
        agent = self._agent(deployment, job)
        items = items_of(
            deployment, host=job.host, address=job.address, zone=job.zone, labels=job.labels
        )
        with _key_file(key) as key_file:
            spec = EngineSpec(
                host=job.host,
                address=job.address,
                port=ssh.port,
                user=ssh.user,
                key_file=str(key_file),
                known_hosts=str(known_hosts),
                policy="strict" if ssh.new_hosts == "refuse" else "accept-new",
                connect_timeout=ssh.connect_timeout.total_seconds(),
                dry=job.mode == "check",
                agent=agent,
                items=items,
            )
            report = await self._engine(spec, timeout=job.timeout)
        return _outcome(verb, job, report)

    def _known_hosts(self, ref: str | None) -> Path:
        if ref is not None:
            if not ref.startswith("file:"):
                raise SecretError(f"ssh.known_hosts must be a file:/path, not {ref[:4]}…")
            return Path(ref.removeprefix("file:"))
        path = private_dir(self.state_dir) / KNOWN_HOSTS
        if not path.exists():
            path.touch(mode=0o600)
        return path

    def _agent(self, deployment: Deployment, job: DeployPayload) -> AgentItem | None:
        spec = deployment.agent
        if spec is None:
            return None
        if spec.state == "absent":
            return AgentItem(state="absent", version="", path=spec.path, env="")
        if not job.agent_version or not job.manager_fingerprint:
            raise DeploySpecError("the manager sent no agent version or host key fingerprint")
        found = wheelhouse.find(job.agent_version, self._wheels)
        manager = spec.manager or self.manager
        if not manager:
            raise DeploySpecError("agent.manager: needed (this worker knows no job server)")
        return AgentItem(
            state="present",
            version=job.agent_version,
            path=spec.path,
            env=agent_env(
                host=job.host,
                manager=manager,
                fingerprint=",".join(dict.fromkeys((job.manager_fingerprint, *self.fingerprints))),
                concurrency=spec.concurrency,
                zone=job.zone,
            ),
            wheelhouse=str(found.tarball(private_dir(self.state_dir) / "wheelhouse")),
            python=found.python,
        )

    async def _engine(self, spec: EngineSpec, *, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        """Run the engine on ``spec``; its report, or a failure saying why there is none."""
        process = await asyncio.create_subprocess_exec(
            self._python,
            "-m",
            "watchkeeper.deploy.engine",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(json.dumps(spec.to_json()).encode()), timeout
            )
        except TimeoutError:
            await _kill(process)
            return {"ok": False, "error_kind": "timeout", "error": f"timed out after {timeout:g}s"}
        except asyncio.CancelledError:  # the worker stops: leave nothing running
            await asyncio.shield(_kill(process))
            raise
        try:
            report = json.loads(out)
        except ValueError:
            tail = err.decode(errors="replace").strip().splitlines()[-1:]
            return {
                "ok": False,
                "error_kind": "engine",
                "error": f"the engine exited {process.returncode} without a report"
                + (f": {tail[0]}" if tail else ""),
            }
        return report if isinstance(report, dict) else {"ok": False, "error": "bad report"}


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the engine's process group (pyinfra and its ssh sessions) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


@contextlib.contextmanager
def _key_file(key: str) -> Any:
    """The private key in a 0600 file of a 0700 directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="wk-deploy-") as directory:
        path = Path(directory) / "key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key if key.endswith("\n") else key + "\n")
        yield path


def _outcome(verb: str, job: DeployPayload, report: dict[str, Any]) -> CheckOutcome:
    changes = [str(c) for c in report.get("changes") or []]
    diffs = report.get("diffs") or {}
    data = {
        "changes": changes,
        "diffs": diffs,
        "facts": report.get("facts") or {},
        "error": str(report.get("error") or ""),
        "error_kind": str(report.get("error_kind") or ""),
        "agent_key": str(report.get("agent_key") or ""),
        "agent_version": str(report.get("agent_version") or ""),
    }
    would = "would " if job.mode == "check" else ""
    listed = "; ".join(f"{would}{c}" for c in changes)
    long_output = "\n".join(str(d) for d in diffs.values())
    if not report.get("ok"):
        done = f" (after: {listed})" if listed else ""
        return CheckOutcome(
            state=CheckState.CRITICAL,
            output=f"{verb} FAILED - {data['error'] or 'no report'}{done}",
            long_output=long_output,
            data=data,
        )
    if not changes:
        summary = "in sync, nothing to change"
    elif job.mode == "check":
        summary = f"{len(changes)} change{'s' if len(changes) != 1 else ''}: {listed}"
    else:
        summary = f"changed: {listed}"
    return CheckOutcome(
        state=CheckState.OK, output=f"{verb} OK - {summary}", long_output=long_output, data=data
    )


def _failed(verb: str, message: str, kind: str) -> CheckOutcome:
    return CheckOutcome(
        state=CheckState.CRITICAL,
        output=f"{verb} FAILED - {message}",
        data={"changes": [], "error": message, "error_kind": kind},
    )


def _scrub(outcome: CheckOutcome, secrets: list[str]) -> CheckOutcome:
    """The outcome with every secret value (and each line of it) replaced by ``***``."""
    parts = {s for secret in secrets for s in (secret, *secret.splitlines()) if len(s) >= 8}
    if not parts:
        return outcome
    text = json.dumps({"o": outcome.output, "l": outcome.long_output, "d": outcome.data})
    if not any(part in text for part in parts):
        return outcome
    for part in sorted(parts, key=len, reverse=True):
        text = text.replace(json.dumps(part)[1:-1], "***")
    back = json.loads(text)
    return CheckOutcome(
        state=outcome.state, output=back["o"], long_output=back["l"], data=back["d"]
    )
