"""`contactd import contacts` / `contactd export contacts` run as the real command."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from contactd.db import migrate
from contactd.db.models import Contact
from contactd.db.session import Database

CONTACTD = Path(sys.executable).with_name("contactd")


async def _prepare(url: str) -> None:
    # The schema exactly as `contactd db upgrade` leaves it.
    db = Database(url)
    await migrate.upgrade(db)
    await db.engine.dispose()


async def _count(url: str) -> int:
    db = Database(url)
    async with db.session() as session:
        n = await session.scalar(select(func.count()).select_from(Contact))
    await db.engine.dispose()
    return int(n or 0)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    path = tmp_path / "contactd.toml"
    path.write_text('[general]\ndata_dir = "data"\ndefault_region = "DE"\n', encoding="utf-8")
    asyncio.run(_prepare(f"sqlite+aiosqlite:///{data / 'contactd.db'}"))
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CONTACTD), *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_import_counts_errors_and_exit_codes(config: Path, tmp_path: Path) -> None:
    source = tmp_path / "kunden.csv"
    source.write_bytes(
        b"Vorname;Nachname;Telefon;E-Mail\n"
        + "Anna;Schmidt;030 1234567;anna@example.com\n".encode("cp1252")
        + "Bernd;Müller;keine;b@example.com\n".encode("cp1252")
        + b"Anna;S.;+49 30 1234567;\n"
        + b";;;\n"
        + "Cem;Yılmaz;0151 23456789;cem@example\n".encode()
    )
    dry = run("import", "contacts", source, "--config", config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "imported: 1" in dry.stdout
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'contactd.db'}"
    assert asyncio.run(_count(db_url)) == 0

    done = run("import", "contacts", source, "--config", config)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "imported: 1" in out and "updated/duplicate: 1" in out and "invalid: 2" in out
    report_line = next(line for line in out.splitlines() if line.startswith("error report:"))
    report = Path(report_line.split(": ", 1)[1])
    assert report.is_relative_to(tmp_path / "data" / "imports")
    with report.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["row"], r["column"]) for r in rows] == [("3", "Telefon"), ("6", "E-Mail")]
    assert "rows" in done.stderr  # the progress bar
    assert asyncio.run(_count(db_url)) == 1

    again = run("import", "contacts", source, "--config", config, "--region", "at")
    assert again.returncode == 0 and "imported: 0" in again.stdout


@pytest.mark.parametrize(
    ("name", "data"),
    [("missing.csv", None), ("empty.csv", b""), ("junk.xlsx", b"PK\x03\x04junk"),
     ("nothing.csv", b"colour,size\nred,XL\n")],
)
def test_unreadable_files_exit_2(config: Path, tmp_path: Path, name: str,
                                 data: bytes | None) -> None:
    source = tmp_path / name
    if data is not None:
        source.write_bytes(data)
    result = run("import", "contacts", source, "--config", config)
    assert result.returncode == 2
    assert result.stderr.startswith("contactd: error:")


def test_export_filtered_view(config: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("name,phone,tags\n=cmd|calc,030 1111111,vip\nPlain Name,030 2222222,\n",
                      encoding="utf-8")
    assert run("import", "contacts", source, "--config", config).returncode == 0
    target = tmp_path / "out.csv"
    result = run("export", "contacts", target, "--config", config, "--tag", "vip")
    assert result.returncode == 0, result.stderr
    assert "exported 1 contacts" in result.stdout
    with target.open(encoding="utf-8-sig") as stream:
        [row] = list(csv.DictReader(stream))
    assert row["last_name"] == "'=cmd|calc" or row["first_name"] == "'=cmd|calc"
    assert row["phones"] == "'+49301111111"
    xlsx = run("export", "contacts", tmp_path / "all.xlsx", "--config", config, "-q", "plain")
    assert xlsx.returncode == 0 and "exported 1 contacts" in xlsx.stdout
