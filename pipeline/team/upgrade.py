"""Moving the team's MLflow to a new release without losing the way back (docs/team.md).

A new MLflow may bring database migrations, and they are one way: the older server refuses the
migrated schema. Worse, an MLflow server that misses a table of its own runs every pending
migration at start-up, with no backup (MLflow 3.18 does so on a 3.17 database). So ``team up``
checks the schema first and refuses to start a server that would migrate or could not read the
database; ``upgrade`` backs both databases up and then migrates; ``restore`` rolls back.

A backup is a folder ``backups/<time>-mlflow-<version>/``: ``mlflow.dump`` and
``mlflow_auth.dump`` (``pg_dump``'s custom format; the auth one holds password hashes, so the
folder is its owner's only) and ``backup.json`` (the schema revision and the MLflow release that
last served it, from ``server.json``, which ``team up`` writes).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.team.postgres import PostgresError
from pipeline.team.services import StackError

if TYPE_CHECKING:
    from pipeline.team.stack import Stack

DATABASES = ("mlflow", "mlflow_auth")  # the tracking store and basic-auth's users


@dataclass(frozen=True)
class Schema:
    """The tracking database's schema revision against what the installed MLflow expects."""

    current: str | None  # None: a new, empty database
    head: str  # the installed MLflow's
    known: bool  # whether the installed MLflow has the current revision (older or equal)


def installed_mlflow() -> str:
    from importlib.metadata import version

    return version("mlflow")


def read_schema(uri: str) -> Schema:
    """Alembic's revision in the database and the installed MLflow's migration scripts. (MLflow
    has no public API for this; ``mlflow.store.db.utils`` is what ``mlflow db upgrade`` uses.)"""
    import sqlalchemy
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError
    from mlflow.store.db import utils

    engine = sqlalchemy.create_engine(uri)
    try:
        current = utils._get_schema_version(engine)
    finally:
        engine.dispose()
    scripts = ScriptDirectory.from_config(utils._get_alembic_config(""))
    try:
        known = current is None or scripts.get_revision(current) is not None
    except CommandError:  # "Can't locate revision": a newer MLflow migrated it
        known = False
    return Schema(current, utils._get_latest_schema_revision(), known)


def served_by(stack: Stack) -> str | None:
    """The MLflow release that last served the stack's database (None: not recorded, as in a
    stack made before the record was kept)."""
    path = stack.root / "server.json"
    return json.loads(path.read_text())["mlflow"] if path.is_file() else None


def _from(version: str | None) -> str:
    return f", from MLflow {version}" if version else ""


def record_server(stack: Stack, version: str | None = None) -> None:
    """Note which MLflow serves the database (the installed one by default): what a backup and
    the messages name."""
    record = {"mlflow": version or installed_mlflow()}
    (stack.root / "server.json").write_text(json.dumps(record) + "\n")


def check_schema(stack: Stack) -> None:
    """Refuse to start a server that would migrate the database, or could not read it."""
    refusal = _refusal(stack, read_schema(stack.postgres.uri("mlflow")))
    if refusal is not None:
        raise refusal


def _refusal(stack: Stack, schema: Schema) -> StackError | None:
    if schema.current in (None, schema.head):
        return None
    where = f"MLflow's database in {stack.postgres.data} (revision {schema.current}"
    where += f"{_from(served_by(stack))})"
    mine = installed_mlflow()
    if schema.known:
        return StackError(
            f"{where} is older than MLflow {mine}'s schema "
            f"({schema.head}), and a server would migrate it one way at start-up: run "
            "`python -m pipeline.team upgrade` (it backs the database up first; docs/team.md)"
        )
    backups = sorted(stack.root.glob("backups/[0-9]*"))
    newest = backups[-1] if backups else stack.root / "backups/..."
    return StackError(
        f"{where} is newer than MLflow {mine} knows: run the "
        "MLflow that migrated it, or roll back to a backup taken before "
        f"(`python -m pipeline.team restore {newest}`; docs/team.md)"
    )


def backup(stack: Stack) -> Path:
    """Dump both databases into a new backup folder, published whole (renamed into place once
    complete: an interrupted or failed backup leaves no folder behind)."""
    stack.start_postgres()
    version, stamp = served_by(stack), datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = stack.root / "backups" / f"{stamp}-mlflow-{version or 'unrecorded'}"
    partial = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder.parent))  # mode 0700
        for database in DATABASES:
            stack.postgres.dump(database, partial / f"{database}.dump")
        revision = read_schema(stack.postgres.uri("mlflow")).current
        info = {"mlflow": version, "schema": revision, "made": stamp}
        (partial / "backup.json").write_text(json.dumps(info, indent=2) + "\n")
        partial.rename(folder)
    except (PostgresError, OSError) as e:
        raise StackError(f"backup failed: {str(e).splitlines()[0]} (nothing was kept)") from e
    finally:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
    return folder


def upgrade(stack: Stack) -> str:
    """Stop the server, back up, migrate to the installed MLflow's schema; what was done."""
    from mlflow.db import upgrade as mlflow_db_upgrade

    stack.mlflow().stop()  # nothing may write between the backup and the migration
    stack.start_postgres()
    uri = stack.postgres.uri("mlflow")
    schema, mine = read_schema(uri), installed_mlflow()
    if schema.current in (None, schema.head):
        return f"MLflow's database already has MLflow {mine}'s schema: nothing to do"
    if not schema.known:
        raise _refusal(stack, schema)
    folder = backup(stack)
    try:  # `mlflow db upgrade URI`, in this process: the URI holds a password, argv would show it
        mlflow_db_upgrade.main([uri], standalone_mode=False)
    except Exception as e:
        raise StackError(
            f"`mlflow db upgrade` failed ({type(e).__name__}): roll back with "
            f"`python -m pipeline.team restore {folder}`"
        ) from e
    return (
        f"backed up to {folder}; MLflow's database upgraded from revision {schema.current}"
        f"{_from(served_by(stack))} to {schema.head} (MLflow {mine}): start the stack with "
        "`make team-up`"
    )


def restore(stack: Stack, folder: Path) -> str:
    """Put a backup's databases back (the server is stopped first); what to start them with."""
    info_file = folder / "backup.json"
    missing = [f"{d}.dump" for d in DATABASES if not (folder / f"{d}.dump").is_file()]
    if not info_file.is_file() or missing:
        raise StackError(
            f"{folder} is not a backup of the team stack (no backup.json or "
            f"{', '.join(missing) or 'dumps'}): choose a folder under {stack.root / 'backups'}"
        )
    info = json.loads(info_file.read_text())
    stack.mlflow().stop()
    stack.start_postgres()
    try:
        for database in DATABASES:
            stack.postgres.restore(database, folder / f"{database}.dump")
    except PostgresError as e:
        raise StackError(
            f"restoring {folder} failed: {str(e).splitlines()[0]} (the databases not yet "
            "restored are as they were; run the restore again)"
        ) from e
    version = info["mlflow"]
    if version:
        record_server(stack, version)
    else:  # not recorded when the backup was made: no longer the installed MLflow's either
        (stack.root / "server.json").unlink(missing_ok=True)
    release = f"MLflow {version}: `pip install mlflow[auth]=={version}`, or " if version else ""
    return (
        f"restored {folder} (schema {info['schema']}{_from(version)}): start the stack with the "
        f"MLflow that served it ({release}the commit whose requirements.lock pins it), then "
        "`make team-up`"
    )
