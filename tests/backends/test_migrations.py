"""The schema's migrations on real SQLite and PostgreSQL: an empty database is made as 0.1.0's `create_all` made it;
a database 0.1.0 made and filled (built with that release's schema, kept frozen in fixtures/schema_0_1_0.py) is
adopted with no CREATE of what it holds and reads back byte for byte; with upgrades on start off, a database behind
is refused with an error naming `aomi-runtime db upgrade`, which the CLI offers with `db current`."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import MetaData, event, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from aomi_runtime.agent.errors import StorageError
from aomi_runtime.agent.records import Commit, Event, SessionRecord, utcnow
from aomi_runtime.backends import migrations
from aomi_runtime.backends.history import SqlHistory
from aomi_runtime.backends.history._dialects import open_engine
from aomi_runtime.backends.keys import SqlKeys
from aomi_runtime.backends.secrets import SqlSecrets
from aomi_runtime.serve_app.cli import main
from tests.backends.fixtures import schema_0_1_0
from tests.contracts.test_history_backend import long_history
from tests.postgres import postgres_database

APPS = ("research", "billing")
SESSIONS = 120  # per App
SECRETS_KEY = SecretStr(base64.urlsafe_b64encode(os.urandom(32)).decode())


@contextmanager
def fresh_database(kind: str, tmp_path: Path, name: str = "db") -> Iterator[str]:
    """The URL of a new, empty database: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as made:
        yield made


@asynccontextmanager
async def engine_of(url: str) -> AsyncIterator[AsyncEngine]:
    engine = open_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


class Release010Schema:
    """0.1.0's schema step, where today's stores take theirs: its metadata's `create_all` (the frozen fixture)."""

    def __init__(self, engine: AsyncEngine, metadata: MetaData) -> None:
        self._engine, self._metadata = engine, metadata

    async def prepare(self) -> None:
        await schema_0_1_0.create(self._engine, self._metadata)


@asynccontextmanager
async def release_0_1_0(url: str) -> AsyncIterator[tuple[SqlHistory, SqlKeys, SqlSecrets]]:
    """The stores as 0.1.0 ran them: the same reads and writes, with 0.1.0's schema step instead of migrations."""
    history, keys, secrets = SqlHistory.from_url(url), SqlKeys.from_url(url), SqlSecrets.open(url, SECRETS_KEY)
    for store, metadata in (
        (history, schema_0_1_0.history),
        (keys, schema_0_1_0.keys),
        (secrets, schema_0_1_0.secrets),
    ):
        store._schema = Release010Schema(store._engine, metadata)  # type: ignore[assignment]
    try:
        yield history, keys, secrets
    finally:
        for store in (history, keys, secrets):
            await store.close()


def commits(app: str, count: int) -> list[Commit]:
    """`count` sessions of `app`, each with its own length of every shape of message, and events."""
    start = utcnow()
    made = []
    for n in range(count):
        sid = f"{app}-{n:04d}-\u00e9"
        size = 1 + n % 9
        record = SessionRecord(
            session_id=sid,
            app=app,
            public_key=None if n % 3 == 0 else f"0x{n % 5:040x}",
            title=f"Session {n} \U0001f600 \x00",
            created_at=start - timedelta(days=n, microseconds=n),
            updated_at=start - timedelta(hours=n, microseconds=7 * n),
            user_state={"evm": {"chainId": n}},
            last_seq=size,
        )
        events = [Event(seq=s, data={"type": "message", "n": s, "text": f"\u0800 {sid}"}) for s in range(1, size + 1)]
        made.append(Commit(record=record, messages=long_history(size), events=events))
    return made


async def everything(history: SqlHistory, keys: SqlKeys, secrets: SqlSecrets) -> dict[str, Any]:
    """All the stores hold, as JSON text, read through their public methods."""
    read: dict[str, Any] = {"keys": [k.model_dump_json() for k in await keys.list()]}
    for app in APPS:
        read[f"{app}/count"] = await history.count(app)
        for owner in (None, *(f"0x{i:040x}" for i in range(5))):
            read[f"{app}/list/{owner}"] = [r.model_dump_json() for r in await history.list(app, owner, 1000)]
        read[f"{app}/stale"] = await history.stale(app, utcnow(), 1000)
        for n in range(SESSIONS):
            sid = f"{app}-{n:04d}-\u00e9"
            read[sid] = await history.load_json(app, sid)
            read[f"{sid}/events"] = [e.model_dump_json() for e in await history.events(app, sid, 0, 100)]
        for client in range(10):
            described = await secrets.describe(app, f"client-{client}")
            read[f"{app}/client-{client}"] = [s.model_dump_json() for s in described]
            read[f"{app}/client-{client}/values"] = [
                await secrets.get(app, f"client-{client}", s.name) for s in described
            ]
    return read


def ddl_of(engine: AsyncEngine) -> list[str]:
    """Every CREATE the engine sends from now on."""
    sent: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("CREATE"):
            sent.append(" ".join(statement.split()))

    return sent


async def test_a_filled_database_of_0_1_0_is_adopted_and_reads_back_identical(url: str) -> None:
    async with release_0_1_0(url) as (history, keys, secrets):
        for app in APPS:
            await history.setup()
            batch = commits(app, SESSIONS)
            for start in range(0, len(batch), 20):
                await history.commit_batch(app, batch[start : start + 20])
            for label in ("ci", "laptop"):
                await keys.create(app, label)
            for client in range(10):
                await secrets.put(app, f"client-{client}", {f"KEY_{i}": f"sk-{app}-{client}-{i}" for i in range(3)})
        await keys.revoke((await keys.list())[0].key_id)
        before = await everything(history, keys, secrets)
    async with engine_of(url) as engine:
        assert (await migrations.revision(engine)).made_before_migrations

    history, keys, secrets = SqlHistory.from_url(url), SqlKeys.from_url(url), SqlSecrets.open(url, SECRETS_KEY)
    created = ddl_of(history._engine)
    try:
        await history.setup()  # upgrades: adopts the database at the baseline, then on to the head
        assert [c.split(" (")[0] for c in created] == ["CREATE TABLE aomi_alembic_version"], created
        after = await everything(history, keys, secrets)
    finally:
        for store in (history, keys, secrets):
            await store.close()
    assert len(before) == len(after) and before == after
    assert sum(1 for v in before.values() if isinstance(v, bytes)) == SESSIONS * len(APPS)
    async with engine_of(url) as engine:
        assert (await migrations.revision(engine)).at_head
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT version_num FROM aomi_alembic_version"))).scalars().all() == [
                migrations.head()
            ]


async def test_what_0_1_0_had_not_made_yet_is_made(tmp_path: Path) -> None:
    """0.1.0 made each store's tables when first used: without a secrets key, no aomi_secrets."""
    url = f"sqlite:///{tmp_path / 'partial.db'}"
    async with release_0_1_0(url) as (history, keys, _):
        await history.setup()
        await keys.setup()
    history = SqlHistory.from_url(url)
    created = ddl_of(history._engine)
    try:
        await history.setup()
    finally:
        await history.close()
    assert sorted(c.split(" (")[0] for c in created) == [
        "CREATE TABLE aomi_alembic_version",
        "CREATE TABLE aomi_secrets",
    ]


async def test_another_alembic_projects_revision_in_the_same_database_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with engine_of(url) as engine:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO alembic_version VALUES ('theirs')"))
        await migrations.prepare(engine, migrate=True)
        assert (await migrations.revision(engine)).at_head
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all() == ["theirs"]


def schema_of(conn: Any) -> dict[str, Any]:
    """A database's tables as SQLAlchemy inspects them: columns (name, type, nullability), keys and indexes."""
    found = inspect(conn)
    return {
        table: {
            "columns": [(c["name"], repr(c["type"]), c["nullable"]) for c in found.get_columns(table)],
            "primary_key": found.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in found.get_indexes(table)),
        }
        for table in sorted(found.get_table_names())
        if table != migrations.VERSION_TABLE
    }


def differences(conn: Any, metadatas: list[MetaData]) -> list[Any]:
    """What Alembic's autogenerate would change to bring the database to these tables (nothing: none)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    together = MetaData()
    for metadata in metadatas:
        for table in metadata.tables.values():
            table.to_metadata(together)
    context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": migrations.VERSION_TABLE})
    return list(compare_metadata(context, together))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_the_migrated_schema_is_the_one_0_1_0_made_and_the_code_uses(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path, "migrated") as migrated_url, fresh_database(kind, tmp_path, "old") as old_url:
        async with engine_of(migrated_url) as migrated, engine_of(old_url) as old:
            await migrations.prepare(migrated, migrate=True)
            for metadata in schema_0_1_0.ALL:
                await schema_0_1_0.create(old, metadata)
            async with migrated.connect() as conn:
                made = await conn.run_sync(schema_of)
                assert await conn.run_sync(differences, migrations.package_metadata()) == []
                assert await conn.run_sync(differences, list(schema_0_1_0.ALL)) == []
            async with old.connect() as conn:
                assert made == await conn.run_sync(schema_of)
    assert sorted(made) == sorted(migrations.BASELINE_TABLES)


async def test_with_upgrades_on_start_off_a_database_behind_is_refused(url: str) -> None:
    for store in (SqlHistory.from_url(url, migrate=False), SqlKeys.from_url(url, migrate=False)):
        with pytest.raises(StorageError, match=r"at revision none .*run `aomi-runtime db upgrade`"):
            await store.setup()
        await store.close()
    secrets = SqlSecrets.open(url, SECRETS_KEY, migrate=False)
    with pytest.raises(StorageError, match="AOMI_MIGRATE_ON_START=false"):
        await secrets.get("a", "c", "n")
    await secrets.close()


async def setup_of(store: SqlHistory) -> None:
    try:
        await store.setup()
    finally:
        await store.close()


def test_the_cli_with_upgrades_on_start_off(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys` and `serve` (before Ray starts) refuse a database behind, until `db upgrade`: the setting, from the
    environment, reaches the key store."""
    os.environ["AOMI_MIGRATE_ON_START"] = "false"
    try:
        assert main(["keys", "list", "--database-url", url]) == 1
        assert "run `aomi-runtime db upgrade`" in capsys.readouterr().err
        with socket.socket() as taken:  # were the database not refused, the start would stop here, not run on
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            assert main(["serve", "--database-url", url, "--port", str(taken.getsockname()[1])]) == 1
        assert "run `aomi-runtime db upgrade`" in capsys.readouterr().err
        assert main(["db", "upgrade", "--database-url", url]) == 0
        asyncio.run(setup_of(SqlHistory.from_url(url, migrate=False)))  # at head: served
        assert main(["keys", "list", "--database-url", url]) == 0
    finally:
        del os.environ["AOMI_MIGRATE_ON_START"]


async def mark_newer(url: str) -> None:
    async with engine_of(url) as engine, engine.begin() as conn:
        await conn.execute(text("UPDATE aomi_alembic_version SET version_num = 'ffff'"))  # as a newer version leaves it


def test_db_current_and_upgrade(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    head = migrations.head()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).touch()  # an empty database (no file at all is no database)
    assert main(["db", "current", "--database-url", url]) == 0
    assert capsys.readouterr().out == f"revision none (empty; head is {head})\n"
    assert main(["db", "upgrade", "--to", "nonesuch", "--database-url", url]) == 1
    assert "nonesuch" in capsys.readouterr().err
    assert main(["db", "upgrade", "--to", head, "--database-url", url]) == 0
    assert capsys.readouterr().out == f"Upgraded the schema from revision none to {head} (at head).\n"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert capsys.readouterr().out == f"The schema is at revision {head} (at head): nothing to upgrade.\n"
    assert main(["db", "current", "--database-url", url]) == 0
    assert capsys.readouterr().out == f"revision {head} (at head)\n"
    asyncio.run(mark_newer(url))
    assert main(["db", "current", "--database-url", url]) == 0
    assert "ffff (unknown to this version" in capsys.readouterr().out
    with pytest.raises(StorageError, match="'ffff', which this version of aomi-runtime does not know"):
        asyncio.run(setup_of(SqlHistory.from_url(url)))


def test_db_made_before_migrations_is_described_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"

    async def make() -> None:
        async with engine_of(url) as engine:
            await schema_0_1_0.create(engine, schema_0_1_0.history)

    asyncio.run(make())
    assert main(["db", "current", "--database-url", url]) == 0
    assert "none (made before migrations" in capsys.readouterr().out


def test_db_on_a_database_out_of_reach_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert main(["db", "current", "--database-url", f"postgresql://aomi:pw@127.0.0.1:{port}/x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aomi-runtime: ") and "Traceback" not in err and "pw" not in err


async def test_a_newer_versions_database_is_refused_as_such_without_the_lock(url: str) -> None:
    """Upgrades on start or not, a revision this version does not know is refused saying so (not "run db upgrade",
    which cannot help), and before the schema lock: a refused store takes no write lock for each call."""
    async with engine_of(url) as engine:
        await migrations.upgrade(engine)
    await mark_newer(url)
    sent: list[str] = []
    for migrate in (True, False):
        store = SqlHistory.from_url(url, migrate=migrate)
        event.listen(store._engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
        with pytest.raises(StorageError, match="'ffff', which this version of aomi-runtime does not know") as refused:
            await setup_of(store)
        assert "db upgrade" not in str(refused.value)
    assert sent and not any("BEGIN" in s or "advisory" in s for s in sent), sent


def test_db_current_on_no_sqlite_file_makes_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A read: a mistyped path is said to hold no database, not made into an empty one and reported "empty"."""
    missing = tmp_path / "mistyped.db"
    assert main(["db", "current", "--database-url", f"sqlite:///{missing}"]) == 1
    assert f"no database at {missing}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
