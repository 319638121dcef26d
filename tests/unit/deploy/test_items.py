"""A deploy job's host state as the engine's items: order, rendering, errors naming the file."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from pydantic import ValidationError

from watchkeeper.deploy.items import (
    AGENT_KEY,
    AgentItem,
    DeploySpecError,
    Item,
    agent_env,
    describe,
    items_of,
)
from watchkeeper.document.deployments import Deployment


def deployment(**fields: Any) -> Deployment:
    base = {"name": "base", "hosts": ["a"], "ssh": {"key": "env:DEPLOY_KEY"}}
    return Deployment.model_validate(base | fields)


def test_items_come_in_converging_order_with_templates_rendered() -> None:
    spec = deployment(
        services=[{"name": "chrony"}],
        commands=[{"run": "init", "creates": "/var/lib/x"}],
        files=[{"path": "/etc/motd", "template": "{{ host.name }}@{{ host.zone }} {{ vars.v }} "
                "{{ host.labels.role }} {{ deployment }}\n"}],
        packages=[{"name": "chrony"}],
        vars={"v": "1"},
    )  # fmt: skip
    items = items_of(spec, host="a", address="10.0.0.1", zone="dc1", labels={"role": "db"})
    assert [i.kind for i in items] == ["package", "file", "command", "service"]
    assert items[1] == Item(
        kind="file", name="/etc/motd", content="a@dc1 1 db base\n", mode="0644", owner="root",
        group="root",
    )  # fmt: skip


def test_an_undefined_template_name_is_an_error_naming_the_file() -> None:
    spec = deployment(files=[{"path": "/etc/a", "content": "x"},
                             {"path": "/etc/b", "template": "{{ vars.missing }}"}])  # fmt: skip
    with pytest.raises(DeploySpecError, match=r"^files/1/template \(/etc/b\): .*missing"):
        items_of(spec, host="a", address="10.0.0.1", zone="dc1", labels={})


def test_templates_run_in_a_sandbox() -> None:
    spec = deployment(files=[{"path": "/etc/b", "template": "{{ ''.__class__.__mro__ }}"}])
    with pytest.raises(DeploySpecError, match="files/0/template"):
        items_of(spec, host="a", address="10.0.0.1", zone="dc1", labels={})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"commands": [{"run": "x"}]}, "a command needs a guard"),
        ({"files": [{"path": "/a"}]}, "give exactly one of content and template"),
        ({"files": [{"path": "relative", "content": "x"}]}, "String should match pattern"),
        ({}, "a deployment needs something to deploy"),
        ({"packages": [{"name": "Bad Name"}]}, "String should match pattern"),
    ],
)
def test_the_model_refuses_what_cannot_be_converged(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        deployment(**fields)


def test_the_agent_settings_quote_their_values() -> None:
    env = agent_env(
        host="a", manager="m:4730", fingerprint="SHA256:x/y+z", concurrency=2, zone="dc1"
    )
    values = dict(
        line.split("=", 1) for line in env.splitlines() if line and not line.startswith("#")
    )
    assert {k: shlex.split(v)[0] for k, v in values.items()} == {
        "WATCHKEEPER_MANAGER": "m:4730",
        "WATCHKEEPER_WORKER_KEY": AGENT_KEY,
        "WATCHKEEPER_MANAGER_FINGERPRINT": "SHA256:x/y+z",
        "WATCHKEEPER_WORKER_NAME": "a",
        "WATCHKEEPER_WORKER_LABELS": "zone=dc1,agent-for=a",
        "WATCHKEEPER_WORKER_CONCURRENCY": "2",
        "WATCHKEEPER_RECONNECT_MAX": "10",
    }


def test_plan_lines_say_what_an_apply_does() -> None:
    agent = AgentItem(state="present", version="0.2.0", path="/opt/wk", env="")
    assert describe(agent) == "install agent 0.2.0"
    assert describe(agent, installed="0.1.0") == "install agent 0.2.0, replacing 0.1.0"
    gone = AgentItem(state="absent", version="", path="/opt/wk", env="")
    assert describe(gone, installed="0.1.0") == "remove agent 0.1.0"
    assert describe(Item(kind="package", name="x", state="absent")) == "remove package x"
    assert describe(Item(kind="command", name="make")) == "run 'make'"
    assert describe(Item(kind="service", name="cron", running=False)) == (
        "stop/enable service cron"
    )
