"""The database handle: one engine per process, SQLite or PostgreSQL, errors mapped at the edge.

Users write the URLs they know (``sqlite:///path``, ``postgresql://user@host/db``); the store
maps them onto the async drivers it ships with. Each dialect has its own configuration class,
so the SQLite specifics (WAL, foreign keys, ``BEGIN IMMEDIATE`` for writes) stay in one place
and PostgreSQL keeps its defaults.

Every database failure that leaves this package is a `StoreError` whose message names the
database (password masked) and the driver's reason; SQLAlchemy usage errors are bugs and stay
what they are.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import StaticPool

from watchkeeper.errors import StoreError
from watchkeeper.private import private_dir, private_file
from watchkeeper.store.fencing import FENCE

#: The SQLite file inside ``--data-dir``.
DATABASE_FILE = "watchkeeper.db"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Connection execution option asking SQLite for ``BEGIN IMMEDIATE`` (take the write lock now).
WRITE_OPTION = "watchkeeper_write"
#: PostgreSQL advisory lock key serialising migrations and imports across managers.
PG_LOCK_KEY = 0x5741_5443  # "WATC"

#: What the database (not our code) did wrong; SQLAlchemy's usage errors are bugs and stay.
_DATABASE_ERRORS = (DBAPIError, PoolTimeout)

_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}
_PG_DRIVERS = {
    "postgres",
    "postgresql",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
}


def async_url(url: str | URL) -> URL:
    """Map a user's URL onto the async driver this package ships; raise `StoreError` if unknown."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {mask(url)!r}") from exc
    if parsed.drivername in _SQLITE_DRIVERS:
        return parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername in _PG_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(
        f"unsupported database URL {mask(parsed)!r}: use sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST[:PORT]/DATABASE"
    )


def mask(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def reason(exc: BaseException) -> str:
    """The driver's own message, on one line, without SQLAlchemy's statement dump."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(orig).strip() or type(orig).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class DatabaseConfiguration(abc.ABC):
    """How to build and prepare an engine for one dialect."""

    dialect: ClassVar[str]

    #: Server settings every session of a PostgreSQL engine starts with (``SET`` by libpq).
    pg_settings: dict[str, str]

    def __init__(self, pg_settings: dict[str, str] | None = None) -> None:
        self.pg_settings = dict(pg_settings or {})

    @abc.abstractmethod
    def engine(self, url: URL) -> AsyncEngine:
        """A configured engine for ``url``."""

    def _create(self, url: URL, **kw: Any) -> AsyncEngine:
        return _create_async_engine(
            url, json_serializer=_dumps, json_deserializer=orjson.loads, **kw
        )

    async def lock(self, session: AsyncSession) -> None:
        """Serialise writers that SQLite's database lock does not (migrations, imports)."""
        return None


class AioSqliteConfiguration(DatabaseConfiguration):
    """SQLite through aiosqlite: WAL, foreign keys on, and writers take the lock up front.

    pysqlite's own transaction handling is switched off so that a write transaction can start
    with ``BEGIN IMMEDIATE``: two writers then queue on ``busy_timeout`` at ``BEGIN`` instead of
    failing with "database is locked" when a deferred reader tries to upgrade.
    """

    dialect = "sqlite"
    BUSY_TIMEOUT_MS = 5000

    def engine(self, url: URL) -> AsyncEngine:
        memory = url.database in (None, "", ":memory:")
        engine = self._create(url, poolclass=StaticPool) if memory else self._create(url)
        event.listen(engine.sync_engine, "connect", self.setup_sqlite)
        event.listen(engine.sync_engine, "begin", self.begin_sqlite)
        return engine

    def setup_sqlite(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see begin_sqlite)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA busy_timeout = {self.BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    def begin_sqlite(self, conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class AsyncPostgresConfiguration(DatabaseConfiguration):
    """PostgreSQL through psycopg 3; imports and migrations hold a transaction advisory lock."""

    dialect = "postgresql"
    CONNECT_TIMEOUT_S = 10

    def engine(self, url: URL) -> AsyncEngine:
        args: dict[str, Any] = {"application_name": "watchkeeper"}
        if "connect_timeout" not in url.query:
            args["connect_timeout"] = self.CONNECT_TIMEOUT_S
        if self.pg_settings:
            args["options"] = " ".join(f"-c {k}={v}" for k, v in self.pg_settings.items())
        return self._create(url, pool_pre_ping=True, connect_args=args)

    async def lock(self, session: AsyncSession) -> None:
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(PG_LOCK_KEY)))


_CONFIGURATIONS: dict[str, Callable[[dict[str, str] | None], DatabaseConfiguration]] = {
    "sqlite": AioSqliteConfiguration,
    "postgresql": AsyncPostgresConfiguration,
}


class Database:
    """The store's database, one per process: sessions, write transactions, migrations.

    Creating one connects to nothing; the first session does. Close it with `aclose`.
    """

    def __init__(self, url: str | URL, *, pg_settings: dict[str, str] | None = None) -> None:
        self._url = async_url(url)
        self.config = _CONFIGURATIONS[self._url.get_backend_name()](pg_settings)
        self.engine = self.config.engine(self._url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._file_made = False

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(url)

    @classmethod
    def for_data_dir(cls, path: Path) -> Database:
        """SQLite in ``<path>/watchkeeper.db``, creating the directory (0700) when it is missing.

        The file itself is created (0600, which SQLite's -wal and -shm files copy) by the first
        session, so a process that fails before it touches the database leaves nothing behind.
        """
        try:
            private_dir(path)
        except OSError as exc:
            raise StoreError(f"cannot create the data directory {path}: {exc.strerror}") from exc
        return cls(URL.create("sqlite+aiosqlite", database=str(path / DATABASE_FILE)))

    @property
    def url(self) -> str:
        """The URL with its password masked, for display."""
        return mask(self._url)

    @property
    def dialect(self) -> str:
        return self.config.dialect

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; whatever it did is rolled back on exit."""
        async with self._sessions() as session:
            await self._connect(session, write=False)
            with self._errors():
                yield session

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        """A session inside a write transaction: committed on exit, rolled back on an exception."""
        async with self._sessions() as session:
            await self._connect(session, write=True)
            with self._errors():
                yield session
                fence = FENCE.get()
                if fence is not None:  # a leader's write: only while its term leads
                    await fence.check(session)
                await session.commit()  # an exception skips this: closing rolls back

    async def migrate(self) -> None:
        """Bring the schema up to the latest migration (a no-op when it is already there)."""
        async with self.begin() as session:
            await self.lock(session)
            connection = await session.connection()
            await connection.run_sync(_upgrade)

    async def aclose(self) -> None:
        await self.engine.dispose()

    async def lock(self, session: AsyncSession) -> None:
        """Serialise this write transaction with other writers that share the database."""
        await self.config.lock(session)

    async def _connect(self, session: AsyncSession, *, write: bool) -> None:
        path = self.engine.url.database if self.dialect == "sqlite" else None
        if path and path != ":memory:" and not Path(path).parent.is_dir():
            # Refuse before aiosqlite starts a thread that would outlive a failed open.
            raise StoreError(
                f"cannot connect to the database at {self.url}: unable to open database file "
                f"(no directory {Path(path).parent})"
            )
        try:
            if path and path != ":memory:" and not self._file_made:
                private_file(Path(path))
                self._file_made = True
            await session.connection(execution_options={WRITE_OPTION: write})
        except (*_DATABASE_ERRORS, OSError) as exc:
            message = f"cannot connect to the database at {self.url}: {reason(exc)}"
            raise StoreError(message) from exc

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the database's failures into `StoreError` naming this database.

        The driver's own errors are caught too, for the raw-cursor fast paths of `bulk`.
        """
        try:
            yield
        except (*_DATABASE_ERRORS, self.engine.dialect.loaded_dbapi.Error) as exc:
            raise StoreError(f"database error at {self.url}: {reason(exc)}") from exc


def _upgrade(connection: Connection) -> None:
    """Run Alembic on an open connection: no alembic.ini needed at run time."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
