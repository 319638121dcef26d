"""Asking for a cluster where there can be none is a clear error before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.errors import UsageError
from watchkeeper.runtime import ManagerSettings, check_ha


def test_ha_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--ha: needs a PostgreSQL --database .* got none"):
        check_ha(ManagerSettings(source="doc.json", data_dir=tmp_path, ha=True))
    sqlite = ManagerSettings(
        source="doc.json", data_dir=tmp_path, ha=True, database=f"sqlite:///{tmp_path}/x.db"
    )
    with pytest.raises(UsageError, match="SQLite is single-node"):
        check_ha(sqlite)


def test_ha_is_not_for_up(tmp_path: Path) -> None:
    settings = ManagerSettings(
        source="doc.json", data_dir=tmp_path, ha=True, embedded_worker=True,
        database="postgresql+psycopg://wk@db/wk",
    )  # fmt: skip
    with pytest.raises(UsageError, match="not with an embedded worker"):
        check_ha(settings)


def test_a_postgresql_manager_may_cluster(tmp_path: Path) -> None:
    check_ha(
        ManagerSettings(
            source="doc.json", data_dir=tmp_path, ha=True, database="postgresql://wk@db/wk"
        )
    )
