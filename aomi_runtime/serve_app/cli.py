"""`aomi-runtime serve`: start Ray (or join a cluster) and Serve, print the URL, serve until Ctrl-C, clean up; `keys`
and `db` (the schema's revision and upgrades) on the database the same settings name."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from ..agent.errors import ConfigError, DeploymentError, StorageError
from .ingress import Ingress
from .settings import Settings

log = logging.getLogger("aomi_runtime")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aomi-runtime", description="The Aomi agent runtime on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_settings(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument("--config", help="App configuration file, YAML or TOML (AOMI_CONFIG)")
        command.add_argument("--database-url", help="history database (default sqlite:///aomi.db; AOMI_DATABASE_URL)")
        return command

    serve = with_settings(commands.add_parser("serve", help="serve the HTTP API until Ctrl-C"))
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; AOMI_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000; AOMI_PORT)")
    serve.add_argument("--address", help="join this running Ray cluster instead of starting a local one")
    serve.add_argument(
        "--ingress",
        choices=get_args(Ingress),
        help="direct: the ingress replica answers on --port itself (the default); proxy: through Serve's HTTP proxy "
        "(AOMI_INGRESS)",
    )
    serve.add_argument(
        "--sessions-per-actor",
        type=int,
        help="live sessions one session actor (a process) hosts, for Apps that do not set their own (default 1: a "
        "process per session; AOMI_SESSIONS_PER_ACTOR)",
    )

    keys = commands.add_parser("keys", help="make, list and revoke App keys").add_subparsers(dest="keys", required=True)
    create = with_settings(keys.add_parser("create", help="make a key for an App and print it, once"))
    create.add_argument("--app", required=True, help="the App the key opens")
    create.add_argument("--label", default="", help="a note to tell keys apart in `keys list`")
    listing = with_settings(keys.add_parser("list", help="list keys (never their secrets)"))
    listing.add_argument("--app", help="only this App's keys")
    revoke = with_settings(keys.add_parser("revoke", help="revoke a key by its id"))
    revoke.add_argument("key_id", help="the id `keys list` shows")

    db = commands.add_parser("db", help="the database's schema: its revision, and upgrades")
    db_commands = db.add_subparsers(dest="db", required=True)
    upgrade = with_settings(db_commands.add_parser("upgrade", help="upgrade the schema (the runtime does on start)"))
    upgrade.add_argument("--to", default="head", help="the revision to upgrade to (default: head, this version's)")
    with_settings(db_commands.add_parser("current", help="print the schema's revision and whether it is at head"))
    return parser


def serve_until_stopped(settings: Settings, address: str | None) -> None:
    from .launch import launch

    with launch(settings, address) as launched:
        apps = ", ".join(f"{a.name} ({'public' if a.public else 'keyed'})" for a in settings.apps)
        # On a cluster with direct ingress the replicas answer on ports of their own, each its own address.
        urls = launched.url if launched.proxy_port else ", ".join(launched.direct_urls) or launched.url
        ingress = f"direct ingress, Serve's proxy at {launched.proxy_url}" if launched.direct_urls else "Serve's proxy"
        print(
            f"aomi-runtime serving on {urls} ({ingress}; history: {settings.database_url}; Apps: {apps}); "
            "Ctrl-C stops it.",
            flush=True,
        )
        # Its own line, so that the line above stays as scripts read it.
        print(f"aomi-runtime console at {urls.split(', ')[0]}/console", flush=True)
        _wait_for_signal()
        print("aomi-runtime stopping...", flush=True)
    print("aomi-runtime stopped.", flush=True)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from ..backends.keys import SqlKeys

    store = SqlKeys.from_url(settings.database_url, migrate=settings.migrate_on_start)
    try:
        if args.keys == "create":
            if args.app not in {a.name for a in settings.apps}:
                known = ", ".join(a.name for a in settings.apps)
                print(f"aomi-runtime: no App {args.app!r} in the configuration (Apps: {known}).", file=sys.stderr)
                return 2
            key = await store.create(args.app, args.label)
            print(key)
            print(
                f"This is the only time the key is shown; store it now. It opens the App {args.app!r}.", file=sys.stderr
            )
        elif args.keys == "list":
            for info in await store.list(args.app):
                state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
                print(f"{info.key_id}\t{info.app}\t{state}\t{info.created_at:%Y-%m-%d %H:%M}\t{info.label}")
        elif not await store.revoke(args.key_id):
            print(f"aomi-runtime: no active key {args.key_id!r}.", file=sys.stderr)
            return 1
        else:
            print(f"Key {args.key_id} revoked.")
        return 0
    finally:
        await store.close()


async def _db(args: argparse.Namespace, settings: Settings) -> int:
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from ..backends import migrations

    if not _is_sql(settings.database_url):
        print(f"aomi-runtime: {settings.database_url!r} is not an SQL database: it has no schema.", file=sys.stderr)
        return 2
    if args.db == "current" and (missing := _missing_sqlite_file(settings.database_url)) is not None:
        # SQLite makes a file it opens: a read would leave an empty database at a mistyped path, reported "empty".
        print(f"aomi-runtime: no database at {missing} (`db upgrade` makes one).", file=sys.stderr)
        return 1
    engine = migrations.open_database(settings.database_url)
    try:
        if args.db == "current":
            print(f"revision {(await migrations.revision(engine)).describe()}")
            return 0
        before, after = await migrations.upgrade(engine, args.to)
        if before.current == after.current:
            print(f"The schema is at revision {after.describe()}: nothing to upgrade.")
        else:
            print(f"Upgraded the schema from revision {before.current or 'none'} to {after.describe()}.")
        return 0
    except (CommandError, StorageError, SQLAlchemyError, OSError) as exc:  # OSError: no server at the address
        print(f"aomi-runtime: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()


def _missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, if it does not exist (None for one that does, in-memory, or another database)."""
    from sqlalchemy.engine import make_url

    from ..backends.history._dialects import normalize_url

    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:") or parsed.query.get("uri"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def _is_sql(url: str) -> bool:
    from ..backends.history import MEMORY_URL

    return url != MEMORY_URL and "://" in url


async def _schema_refused(settings: Settings) -> str | None:
    """With upgrades on start off, why `serve` must not start on this database (behind the head, or unreadable)."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..backends import migrations

    if settings.migrate_on_start or not _is_sql(settings.database_url):
        return None
    engine = migrations.open_database(settings.database_url)
    try:
        found = await migrations.revision(engine)
    except (SQLAlchemyError, OSError) as exc:
        return f"The database's schema revision could not be read: {exc}"
    finally:
        await engine.dispose()
    return None if found.at_head else migrations.behind(found)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    given = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "database_url": args.database_url,
        "config": args.config,
        "ingress": getattr(args, "ingress", None),
        "sessions_per_actor": getattr(args, "sessions_per_actor", None),
    }
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ConfigError as exc:
        print(f"aomi-runtime: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"aomi-runtime: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.command == "keys":
        try:
            return asyncio.run(_keys(args, settings))
        except StorageError as exc:  # the database behind this version's schema, with upgrades on start off
            print(f"aomi-runtime: {exc}", file=sys.stderr)
            return 1
    if args.command == "db":
        return asyncio.run(_db(args, settings))
    if (refused := asyncio.run(_schema_refused(settings))) is not None:
        print(f"aomi-runtime: {refused}", file=sys.stderr)
        return 1
    try:
        serve_until_stopped(settings, args.address)
    except DeploymentError as exc:
        print(f"aomi-runtime: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
