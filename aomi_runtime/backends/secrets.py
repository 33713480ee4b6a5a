"""Client secrets at rest: each value encrypted with AES-256-GCM, bound to its App, client and name.

With the operator's key (`AOMI_SECRETS_KEY`: 32 random bytes, URL-safe base64) they are kept in the history
database, in a table of their own, and survive restarts. Without one, the key is made at random when the store
starts and the table is an in-memory SQLite of the store actor: secrets are held in memory only, and lost when it
restarts. Either way no value is ever stored, logged or returned in plain text except to the session that reads it.
"""

from __future__ import annotations

import base64
import binascii
import os
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, SecretStr
from sqlalchemy import Column, ColumnElement, DateTime, LargeBinary, MetaData, String, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ..agent.errors import ConfigError, LimitReached
from ..agent.records import utcnow
from ..agent.secrets import MAX_SECRETS_PER_CLIENT, check_secret, key_prefix
from .history import MEMORY_URL, _dialects
from .migrations import Schema

SECRETS_POOL = {"pool_size": 1, "max_overflow": 2, "pool_timeout": 10.0}  # read once a turn of a bound session
NONCE_BYTES = 12

metadata = MetaData()  # a change to its tables needs a migration (backends/migrations/versions/)

secrets_table = Table(
    "aomi_secrets",
    metadata,
    Column("app", String(64), primary_key=True),
    Column("client_id", String(128), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("sealed", LargeBinary, nullable=False),  # nonce, then AES-GCM ciphertext and tag
    Column("label", String(200), nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class SecretInfo(BaseModel):
    """A secret as listed: its name, label and a short prefix, never its value."""

    name: str
    label: str
    prefix: str
    updated_at: datetime


def parse_key(key: SecretStr) -> bytes:
    """The AES-256 key `AOMI_SECRETS_KEY` holds. Raises `ConfigError`, without the value, if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(key.get_secret_value().strip())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(
            "AOMI_SECRETS_KEY must be 32 random bytes in URL-safe base64, e.g. the output of "
            'python -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())".'
        )
    return raw


class SqlSecrets:
    """One App's client secrets, sealed with one key."""

    def __init__(self, engine: AsyncEngine, key: bytes, *, migrate: bool = True) -> None:
        self._engine = engine
        self._aead = AESGCM(key)
        self._schema = Schema(engine, migrate=migrate)

    @classmethod
    def open(cls, url: str, key: SecretStr | None, *, migrate: bool = True) -> SqlSecrets:
        """Beside the history `url` names when there is a key (in memory for `memory://` or a custom backend);
        in memory, under a random key, without one. `migrate`: as `SqlHistory`'s."""
        if key is None or url == MEMORY_URL or "://" not in url:
            engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
            return cls(engine, parse_key(key) if key is not None else AESGCM.generate_key(bit_length=256))
        return cls(_dialects.open_engine(url, postgres_pool=SECRETS_POOL), parse_key(key), migrate=migrate)

    async def close(self) -> None:
        await self._engine.dispose()

    def _seal(self, app: str, client_id: str, name: str, value: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        # The row's own identity is authenticated data: a sealed value copied to another row does not open there.
        return nonce + self._aead.encrypt(nonce, value.encode(), _bound(app, client_id, name))

    def _open(self, app: str, client_id: str, name: str, sealed: bytes) -> str | None:
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _bound(app, client_id, name))
        except InvalidTag:  # sealed under another key (AOMI_SECRETS_KEY changed) or moved: as if never set
            return None
        return plain.decode()

    async def put(self, app: str, client_id: str, values: dict[str, str], label: str = "") -> None:
        """Set (or replace) these secrets of a client, all or none. Raises `LimitReached` past
        `MAX_SECRETS_PER_CLIENT` names."""
        for name, value in values.items():
            check_secret(name, value)
        await self._schema.prepare()
        now = _dialects.naive_utc(utcnow())
        row = {"app": app, "client_id": client_id, "label": label, "updated_at": now}
        rows = [{**row, "name": n, "sealed": self._seal(app, client_id, n, v)} for n, v in values.items()]
        async with self._engine.begin() as conn:
            have = set((await conn.execute(select(secrets_table.c.name).where(*_row(app, client_id)))).scalars())
            if len(have | set(values)) > MAX_SECRETS_PER_CLIENT:
                raise LimitReached(f"A client holds at most {MAX_SECRETS_PER_CLIENT} secrets; delete some first.")
            statement = _dialects.insert(self._engine, secrets_table)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["app", "client_id", "name"],
                    set_={"sealed": statement.excluded.sealed, "label": statement.excluded.label,
                          "updated_at": statement.excluded.updated_at},
                ),
                rows,
            )  # fmt: skip

    async def get(self, app: str, client_id: str, name: str) -> str | None:
        await self._schema.prepare()
        query = select(secrets_table.c.sealed).where(*_row(app, client_id, name))
        async with self._engine.connect() as conn:
            sealed = (await conn.execute(query)).scalar_one_or_none()
        return None if sealed is None else self._open(app, client_id, name, sealed)

    async def describe(self, app: str, client_id: str, prefix: str = "") -> list[SecretInfo]:
        """The client's secrets whose names start with `prefix`, each with a few characters of its value."""
        await self._schema.prepare()
        query = (
            select(secrets_table.c.name, secrets_table.c.sealed, secrets_table.c.label, secrets_table.c.updated_at)
            .where(secrets_table.c.app == app, secrets_table.c.client_id == client_id)
            .where(secrets_table.c.name.startswith(prefix, autoescape=True))
            .order_by(secrets_table.c.name)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        found = []
        for row in rows:
            value = self._open(app, client_id, row.name, row.sealed)
            if value is not None:
                found.append(
                    SecretInfo(name=row.name, label=row.label, prefix=key_prefix(value), updated_at=row.updated_at)
                )
        return found

    async def delete(self, app: str, client_id: str, name: str | None = None) -> int:
        """Delete one secret of a client, or all of them (`name` None); returns how many there were."""
        await self._schema.prepare()
        where = _row(app, client_id, name) if name is not None else _row(app, client_id)
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(secrets_table).where(*where))
        return int(result.rowcount or 0)


def _bound(app: str, client_id: str, name: str) -> bytes:
    return "\0".join((app, client_id, name)).encode()


def _row(app: str, client_id: str, name: str | None = None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [secrets_table.c.app == app, secrets_table.c.client_id == client_id]
    if name is not None:
        where.append(secrets_table.c.name == name)
    return where
