"""Customer data is readable by the contactd user only: folders 0700, files 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from contactd.config import load_settings
from contactd.db.bootstrap import ensure_data_dir, open_database

ROOT = Path(__file__).parents[3]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_command_creates_private_folders_and_files(tmp_path: Path) -> None:
    config = tmp_path / "contactd.toml"
    config.write_text("[general]\ndata_dir = 'data/deeper'\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTD_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "contactd.cli", "db", "upgrade", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),  # a typical login umask
    )
    assert done.returncode == 0, done.stderr
    data = tmp_path / "data" / "deeper"
    assert mode(data) == 0o700
    written = [p for p in data.iterdir() if p.is_file()]
    assert any(p.name == "contactd.db" for p in written)
    assert {p.name: mode(p) for p in written} == {p.name: 0o600 for p in written}


async def test_data_left_readable_by_an_older_version_is_closed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    db_file = data / "contactd.db"
    db_file.touch()
    os.chmod(db_file, 0o644)
    assert ensure_data_dir(data) == data
    assert mode(data) == 0o700
    settings = load_settings(None, {"CONTACTD_GENERAL__DATA_DIR": str(data)})
    db = await open_database(settings)
    async with db:
        pass
    assert mode(db_file) == 0o600


def test_the_systemd_unit_keeps_state_private() -> None:
    lines = (ROOT / "systemd" / "contactd.service").read_text(encoding="utf-8").splitlines()
    assert "UMask=0077" in lines
    assert "StateDirectoryMode=0700" in lines
