"""The compose file and the Kubernetes manifests say only what the image and the CLI do:
commands that exist, variables the CLI reads, the image's user, a read-only root and
``watchkeeper health`` as the probe."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.unit.cli.test_dispatch import leaves
from watchkeeper.cli import build_parser
from watchkeeper.deploy.wheelhouse import ENV as WHEELHOUSE_ENV

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "image/compose.yaml"
MANIFESTS = sorted((REPO / "image/kubernetes").glob("*.yaml"))


def cli_variables() -> set[str]:
    """Every ``WATCHKEEPER_*`` a command reads, as its ``--help`` names them."""
    found = {WHEELHOUSE_ENV, "WATCHKEEPER_TOKEN", "WATCHKEEPER_URL"}
    for _, parser in leaves(build_parser()):
        for action in parser._actions:
            found.update(re.findall(r"\[env (WATCHKEEPER_\w+)\]", action.help or ""))
    return found


def commands() -> set[str]:
    top = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(top.choices)


def containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(file, pod securityContext, container) for every container of the manifests."""
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            spec = doc.get("spec", {}).get("template", {}).get("spec")
            if spec:
                for container in spec["containers"]:
                    yield path.name, spec.get("securityContext", {}), container


def test_the_containerfile_runs_the_cli_as_its_own_user() -> None:
    text = (REPO / "Containerfile").read_text()
    assert 'ENTRYPOINT ["/opt/watchkeeper/bin/watchkeeper"]' in text
    assert 'CMD ["up"]' in text
    assert "USER 10001:10001" in text
    assert 'CMD ["watchkeeper", "health"]' in text


def test_kubernetes_containers_run_a_command_hardened_with_the_health_probe() -> None:
    found = list(containers())
    assert {name for name, _, _ in found} == {"manager.yaml", "worker.yaml"}
    for name, pod, container in found:
        assert container["args"][0] in commands(), name
        assert (pod["runAsUser"], pod["runAsNonRoot"]) == (10001, True), name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["livenessProbe"]["exec"]["command"] == ["watchkeeper", "health"]
        for variable in container.get("env", []):
            assert variable["name"] in cli_variables(), (name, variable["name"])


def test_compose_services_run_a_command_read_only_with_the_health_check() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    assert set(compose["services"]) == {"manager", "worker"}
    for name, service in compose["services"].items():
        assert service["command"][0] in commands(), name
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        assert service["healthcheck"]["test"] == ["CMD", "watchkeeper", "health"]
        for variable in service.get("environment", {}):
            assert variable in cli_variables(), (name, variable)
    # The web answers this machine only; workers reach the job port.
    assert "127.0.0.1:8470:8470" in compose["services"]["manager"]["ports"]
