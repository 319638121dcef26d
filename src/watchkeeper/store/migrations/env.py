"""Alembic environment: run on the connection `Database.migrate` hands over.

Without one (``alembic -x url=...`` while writing a new revision) it opens a synchronous
connection to the URL, mapped to drivers installed with Watchkeeper.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from watchkeeper.store.tables import Base


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("pass the database with: alembic -x url=sqlite:///path/watchkeeper.db")
    from watchkeeper.store.db import async_url

    sync = async_url(url)
    sync = sync.set(drivername="sqlite" if sync.get_backend_name() == "sqlite" else sync.drivername)
    engine = create_engine(sync)
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()


main()
