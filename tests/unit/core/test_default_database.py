"""A command without --config opens the documented default database and says which."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from contactd.config import load_settings

ROOT = Path(__file__).parents[3]


def test_the_default_data_folder_is_the_daemons() -> None:
    settings = load_settings(None, {})
    assert settings.general.data_dir == Path("/var/lib/contactd")
    assert settings.database_url == "sqlite+aiosqlite:////var/lib/contactd/contactd.db"


def test_a_command_without_config_names_its_database_and_leaves_cwd_alone(
    tmp_path: Path,
) -> None:
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    data = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTD_")}
    env.update(PYTHONPATH=str(ROOT), CONTACTD_GENERAL__DATA_DIR=str(data))
    done = subprocess.run(
        [sys.executable, "-m", "contactd.cli", "db", "upgrade"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"no --config given: database {data / 'contactd.db'}" in done.stderr
    assert (data / "contactd.db").exists()
    assert list(cwd.iterdir()) == []
