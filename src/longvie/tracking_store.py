"""The MLflow tracking database, created whole or not at all.

MLflow creates its SQLite database in place and migrates it one revision at a time, and SQLite's
DDL is not transactional there: a process killed during those seconds leaves tables that the next
migration run tries to create again (``table logged_models already exists``), and every later
command fails. So a missing database is built in a temporary file beside the final one and linked
into place only once MLflow's own schema check passes; a database found half-made (behind
MLflow's schema and holding no run, model or experiment of its own) is moved aside, kept, and
built again. One holding data is never touched: the message says how to upgrade it.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
import uuid
from contextlib import closing
from pathlib import Path

from longvie.atomic import fsync_directory
from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.step_lock import process_alive

_CREATING = ".creating-"
# Tables whose rows mean someone used the database (the Default experiment is MLflow's own).
_USER_ROWS = {
    "runs": "SELECT COUNT(*) FROM runs",
    "registered_models": "SELECT COUNT(*) FROM registered_models",
    "experiments": "SELECT COUNT(*) FROM experiments WHERE experiment_id != 0",
}


class TrackingStoreError(LongvieError):
    """The tracking database cannot be used as it is; the message says what to do."""


def sqlite_database(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI, or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return Path(database).resolve() if database and database != ":memory:" else None


def prepare_tracking_store(config: LongvieConfig) -> None:
    """Make sure the configured SQLite tracking database exists whole (or raise saying why)."""
    from longvie.tracking import tracking_uri

    path = sqlite_database(tracking_uri(config))
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(path)
    if path.exists() and not _set_aside_if_half_made(path):
        return
    _create_whole(path, config.mlflow.artifact_root)


def _temporary_name(path: Path) -> Path:
    """Beside ``path``, named by this process (the sweep's key) and a token (threads)."""
    return path.with_name(f".{path.name}{_CREATING}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove_dead_temporaries(path: Path) -> None:
    """Temporary databases of killed creators (their pid is in the name) are removed."""
    for leftover in path.parent.glob(f".{path.name}{_CREATING}*"):
        pid = leftover.name.rsplit(_CREATING, 1)[1].split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            leftover.unlink(missing_ok=True)


@functools.cache
def _schema_head() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def _read_state(path: Path) -> tuple[str | None, dict[str, int]]:
    """The schema revision and the user rows of a database (rolls back a hot journal)."""
    try:
        with closing(sqlite3.connect(path, timeout=30)) as connection:
            tables = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            revision = None
            if "alembic_version" in tables:
                row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
                revision = row[0] if row else None
            rows = {table: connection.execute(query).fetchone()[0]
                    for table, query in _USER_ROWS.items() if table in tables}
    except sqlite3.DatabaseError as error:
        raise TrackingStoreError(
            f"the MLflow tracking database {path} cannot be read ({error}); move it away to "
            "start a new one, or point mlflow.tracking_uri elsewhere") from error
    return revision, rows


def _set_aside_if_half_made(path: Path) -> bool:
    """True when ``path`` was half-made and has been moved aside (so it must be built again)."""
    revision, rows = _read_state(path)
    head = _schema_head()
    if revision == head:
        return False
    if any(rows.values()):
        held = ", ".join(f"{count} {table}" for table, count in rows.items() if count)
        raise TrackingStoreError(
            f"the MLflow tracking database {path} is at schema {revision or 'none'} but this "
            f"MLflow needs {head}; it holds {held}, so it is left as it is: back it up, then run "
            f"`mlflow db upgrade sqlite:///{path}`")
    aside = path.with_name(f"{path.name}.incomplete-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    journal = path.with_name(f"{path.name}-journal")
    if journal.exists():
        os.replace(journal, aside.with_name(f"{aside.name}-journal"))
    print(f"mlflow: {path.name} was half-made (schema {revision or 'none'}, no runs); kept as "
          f"{aside.name}, building a new one", flush=True)
    return True


def _create_whole(path: Path, artifact_root: str) -> None:
    """Build the database in a temporary file, check it, and link it into place (a database
    another process linked first wins; this one is discarded)."""
    import logging

    from mlflow.store.db.utils import _verify_schema
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    temporary = _temporary_name(path)
    quiet = logging.getLogger("alembic").level
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        store = SqlAlchemyStore(f"sqlite:///{temporary}", artifact_root)
        _verify_schema(store.engine)
        store.engine.dispose()
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process built it first: its database is as good as this one
        fsync_directory(path.parent)
    finally:
        logging.getLogger("alembic").setLevel(quiet)
        temporary.unlink(missing_ok=True)
        temporary.with_name(f"{temporary.name}-journal").unlink(missing_ok=True)
