"""Backup and restore of everything contactd stores: the database and the files beside it.

One archive (`.tar.gz`) holds a manifest, the database and the record folders of the data
directory (documents, received mail, message templates). The database copy is consistent
while the daemon writes: SQLite's online backup API reads one snapshot (in WAL mode writers
go on), PostgreSQL's `pg_dump` reads one transaction.

Restore checks the whole archive (manifest, checksums, schema revision) before it touches
anything, refuses while a daemon answers on the configured web port, and moves what it
replaces aside (`*.before-restore-<stamp>`), so nothing already stored is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from contactd import __version__
from contactd.config import Settings
from contactd.db import migrate
from contactd.errors import ContactdError

FORMAT: Final = 1
MANIFEST: Final = "manifest.json"
SQLITE_MEMBER: Final = "database/contactd.db"
PG_MEMBER: Final = "database/contactd.pgdump"
FILE_DIRS: Final = ("documents", "mail", "templates")  # under data_dir: records, not caches
SQLITE_PREFIX: Final = "sqlite+aiosqlite:///"


class BackupError(ContactdError):
    code = "backup_failed"


class RestoreRefused(ContactdError):
    code = "restore_refused"


@dataclass(frozen=True)
class BackupReport:
    path: Path
    database: str  # "sqlite" or "postgresql"
    revision: str | None
    files: int
    size: int


@dataclass(frozen=True)
class RestoreReport:
    database: str
    revision: str | None
    files: int
    moved_aside: tuple[Path, ...]


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _sqlite_path(settings: Settings) -> Path | None:
    url = settings.database_url
    return Path(url[len(SQLITE_PREFIX):]) if url.startswith(SQLITE_PREFIX) else None


def _pg_env(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """libpq arguments for the configured PostgreSQL URL; the password goes in PGPASSWORD,
    never on a command line other users can read."""
    parts = urlsplit(settings.database_url)
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
            "-d", unquote(parts.path.lstrip("/"))]
    if parts.username:
        args += ["-U", unquote(parts.username)]
    return args, env


def _run_tool(command: list[str], env: dict[str, str]) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} not found: install PostgreSQL's client programs")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[:500]}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sqlite_snapshot(source: Path, target: Path) -> str | None:
    """Copy one consistent snapshot of a live SQLite database; its schema revision."""
    if not source.exists():
        raise BackupError(f"no database at {source}", path=str(source))
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
            check = dst.execute("PRAGMA integrity_check").fetchone()
            if not check or check[0] != "ok":
                raise BackupError(f"the copy of {source} fails its integrity check: {check}")
            return _revision(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return str(row[0]) if row else None


def _record_files(data_dir: Path) -> Iterator[Path]:
    for name in FILE_DIRS:
        folder = data_dir / name
        if folder.is_dir():
            yield from sorted(p for p in folder.rglob("*") if p.is_file())


def make_backup(settings: Settings, out: Path) -> BackupReport:
    """Write the archive to `out` (a file, or a folder to put a stamped file in)."""
    if out.is_dir():
        out = out / f"contactd-backup-{_stamp()}.tar.gz"
    if out.exists():
        raise BackupError(f"{out} exists: choose another name", path=str(out))
    data_dir = settings.general.data_dir.resolve()
    entries: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="contactd-backup-") as tmp:
        work = Path(tmp)
        sqlite_path = _sqlite_path(settings)
        if sqlite_path is not None:
            kind, member = "sqlite", SQLITE_MEMBER
            revision = _sqlite_snapshot(sqlite_path, work / "db")
        else:
            kind, member = "postgresql", PG_MEMBER
            args, env = _pg_env(settings)
            _run_tool(["pg_dump", "--format=custom", "--no-owner", "-f", str(work / "db"),
                       *args], env)
            revision = None  # read back on restore from the dump itself
        entries[member] = _sha256(work / "db")
        files = list(_record_files(data_dir))
        for path in files:
            entries["files/" + path.relative_to(data_dir).as_posix()] = _sha256(path)
        manifest = {"format": FORMAT, "contactd": __version__, "created": _stamp(),
                    "database": kind, "revision": revision, "members": entries}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
        partial = out.with_name(out.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                tar.add(work / MANIFEST, arcname=MANIFEST)
                tar.add(work / "db", arcname=member)
                for path in files:
                    tar.add(path, arcname="files/" + path.relative_to(data_dir).as_posix())
                raw.flush()
                os.fsync(raw.fileno())
            partial.replace(out)  # a half-written archive never carries the final name
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return BackupReport(out, kind, revision, len(files), out.stat().st_size)


@contextmanager
def _opened(archive: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """The archive unpacked into a private folder and checked member by member."""
    if not archive.is_file():
        raise RestoreRefused(f"no backup file at {archive}", path=str(archive))
    with tempfile.TemporaryDirectory(prefix="contactd-restore-") as tmp:
        work = Path(tmp)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(work, filter="data")  # no links out, no absolute paths
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise RestoreRefused(f"{archive} is not a readable contactd backup: {exc}",
                                 path=str(archive)) from None
        try:
            manifest = json.loads((work / MANIFEST).read_text())
            members: dict[str, str] = manifest["members"]
        except (OSError, ValueError, KeyError, TypeError):
            raise RestoreRefused(f"{archive} has no valid {MANIFEST}",
                                 path=str(archive)) from None
        if manifest.get("format") != FORMAT:
            raise RestoreRefused(f"{archive} is backup format {manifest.get('format')!r}; "
                                 f"this contactd reads format {FORMAT}", path=str(archive))
        for name, digest in members.items():
            path = work / name
            if not path.is_file() or _sha256(path) != digest:
                raise RestoreRefused(f"{archive}: {name} is missing or damaged (checksum)",
                                     path=str(archive), member=name)
        yield manifest, work


def _move_aside(path: Path, stamp: str) -> Path | None:
    if not path.exists():
        return None
    target = path.with_name(f"{path.name}.before-restore-{stamp}")
    path.rename(target)
    return target


def restore_backup(settings: Settings, archive: Path) -> RestoreReport:
    """Put the archive's database and files in place of the configured ones. The caller has
    made sure no daemon runs on them (`daemon_answers`)."""
    data_dir = settings.general.data_dir.resolve()
    stamp = _stamp()
    moved: list[Path] = []
    with _opened(archive) as (manifest, work):
        kind = manifest.get("database")
        sqlite_path = _sqlite_path(settings)
        wanted = "sqlite" if sqlite_path is not None else "postgresql"
        if kind != wanted:
            raise RestoreRefused(f"{archive} holds a {kind} database; this configuration "
                                 f"uses {wanted}", path=str(archive))
        revision = manifest.get("revision")
        known = migrate.known_revisions()
        if revision is not None and revision not in known:
            raise RestoreRefused(f"{archive} is at schema revision {revision}, which this "
                                 "contactd does not know: restore it with the version that "
                                 "made it, or a newer one", path=str(archive))
        files = [name for name in manifest["members"] if name.startswith("files/")]
        if sqlite_path is not None:
            sqlite_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                aside = _move_aside(sqlite_path.with_name(sqlite_path.name + suffix), stamp)
                if aside is not None:
                    moved.append(aside)
            shutil.copyfile(work / SQLITE_MEMBER, sqlite_path)
            os.chmod(sqlite_path, 0o600)
        else:
            args, env = _pg_env(settings)
            keep = data_dir / f"contactd.pgdump.before-restore-{stamp}"
            _run_tool(["pg_dump", "--format=custom", "--no-owner", "-f", str(keep), *args], env)
            moved.append(keep)
            _run_tool(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                       *args, str(work / PG_MEMBER)], env)
        for name in FILE_DIRS:
            aside = _move_aside(data_dir / name, stamp)
            if aside is not None:
                moved.append(aside)
        for name in files:
            target = data_dir / name.removeprefix("files/")
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copyfile(work / name, target)
            os.chmod(target, 0o600)
    return RestoreReport(str(kind), revision, len(files), tuple(moved))
