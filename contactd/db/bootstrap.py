"""Open the configured database for a command or the daemon: folder checks, then migrations."""

from __future__ import annotations

import os
from pathlib import Path

from contactd.config import Settings
from contactd.db import migrate
from contactd.db.session import Database
from contactd.errors import StartupError


def ensure_data_dir(path: Path) -> Path:
    """Create the data folder if needed and prove it is writable, with a clear error if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"data folder {path} cannot be created: {exc.strerror}", path=str(path)
        ) from None
    if not path.is_dir():
        raise StartupError(f"data folder {path} is not a folder", path=str(path))
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(f"data folder {path} is not writable", path=str(path))
    return path


async def open_database(settings: Settings, *, upgrade: bool = True) -> Database:
    """A checked Database; the caller enters it (`async with`) to own its lifetime."""
    ensure_data_dir(settings.general.data_dir)
    db = Database(settings.database_url, echo=settings.database.echo)
    await db.check()
    if upgrade:
        await migrate.upgrade(db)
    return db
