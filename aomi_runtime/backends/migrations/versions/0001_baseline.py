"""The baseline: the schema of 0.1.0, the last release made by `create_all` (tests/backends/fixtures/schema_0_1_0.py).

A database that release made has some of these tables (each store created its own group when first used) and no
revision: each table or index already there is left as it is, so such a database is adopted at this revision with
no CREATE of what it holds, and only what it lacks is made. An empty database gets all of it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> list[tuple[str, list[sa.Column[object]], list[tuple[str, list[str]]]]]:
    """Each table: its columns, and its indexes (name, columns)."""

    def numbered(number: str) -> list[sa.Column[object]]:
        return [
            sa.Column("session_id", sa.String(128), primary_key=True),
            sa.Column(number, sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("data", sa.Text, nullable=False),
        ]

    return [
        (
            "aomi_sessions",
            [
                sa.Column("session_id", sa.String(128), primary_key=True),
                sa.Column("app", sa.String(64), nullable=False),
                sa.Column("public_key", sa.String(256)),
                sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
                sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
                sa.Column("data", sa.Text, nullable=False),
            ],
            [
                ("aomi_sessions_by_owner", ["app", "public_key", "updated_at"]),
                ("aomi_sessions_by_age", ["app", "updated_at"]),
            ],
        ),
        ("aomi_messages", numbered("id"), []),
        ("aomi_events", numbered("seq"), []),
        (
            "aomi_keys",
            [
                sa.Column("key_id", sa.String(32), primary_key=True),
                sa.Column("app", sa.String(64), nullable=False),
                sa.Column("secret_hash", sa.String(64), nullable=False),
                sa.Column("label", sa.String(200), nullable=False),
                sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
                sa.Column("revoked_at", sa.DateTime(timezone=True)),
            ],
            [("ix_aomi_keys_app", ["app"])],
        ),
        (
            "aomi_secrets",
            [
                sa.Column("app", sa.String(64), primary_key=True),
                sa.Column("client_id", sa.String(128), primary_key=True),
                sa.Column("name", sa.String(128), primary_key=True),
                sa.Column("sealed", sa.LargeBinary, nullable=False),  # nonce, then AES-GCM ciphertext and tag
                sa.Column("label", sa.String(200), nullable=False),
                sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            ],
            [],
        ),
    ]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = set(inspector.get_table_names())
    for name, columns, indexes in _tables():
        if name not in present:
            op.create_table(name, *columns)
        indexed = {i["name"] for i in inspector.get_indexes(name)} if name in present else set()
        for index, on in indexes:
            if index not in indexed:
                op.create_index(index, name, on)


def downgrade() -> None:
    for name, _, _ in reversed(_tables()):
        op.drop_table(name)
