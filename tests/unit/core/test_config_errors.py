"""Configuration mistakes end in one line naming the culprit and exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from contactd.config import load_settings
from contactd.errors import ConfigError

ROOT = Path(__file__).parents[3]


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "contactd.toml"
    path.write_bytes("[ami]\nusername = 'Jos\u00e9'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at offset 21\)"):
        load_settings(path, {})


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "contactd.toml"
    path.write_bytes(b"\xef\xbb\xbf[ami]\nusername = 'bom'\n")
    assert load_settings(path, {}).ami.username == "bom"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"CONTACTD_AMI__SECRET__FOO": "x"}, r"CONTACTD_AMI__SECRET__FOO: ami\.secret is a single"),
        (
            {"CONTACTD_AMI__SECRET": "a", "CONTACTD_AMI__SECRET__FOO": "x"},
            r"CONTACTD_AMI__SECRET__FOO: ami\.secret is a single",
        ),
        ({"CONTACTD_NOPE__KEY": "1"}, r"CONTACTD_NOPE__KEY: no such setting 'nope\.key'"),
        ({"CONTACTD_AMI__NOPE": "1"}, r"CONTACTD_AMI__NOPE: unknown setting 'ami\.nope'"),
        ({"CONTACTD_WEB__PORT": "0"}, r"CONTACTD_WEB__PORT: web\.port"),
    ],
)
def test_environment_mistakes_blame_the_variable(
    tmp_path: Path, environ: dict[str, str], expected: str
) -> None:
    path = tmp_path / "contactd.toml"
    path.write_text("[web]\nport = 8080\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(path, environ)
    assert str(path) not in str(info.value)


@pytest.mark.parametrize("value", ["08:00Z", "08:00+02:00", "08:00:00-05:00"])
def test_window_times_with_an_offset_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"CONTACTD_DIALER__WINDOW_START: .*without a UTC offset"):
        load_settings(None, {"CONTACTD_DIALER__WINDOW_START": value})


def test_a_toml_time_with_offset_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "contactd.toml"
    path.write_text("[dialer]\nwindow_end = '21:00Z'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"contactd\.toml: dialer\.window_end: .*UTC offset"):
        load_settings(path, {})


def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "contactd.toml"
    path.write_bytes(b"\xff\xfe[ami]\n")
    for extra_env in ({}, {"CONTACTD_AMI__SECRET__FOO": "x"}):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTD_")}
        env.update(PYTHONPATH=str(ROOT), **extra_env)
        done = subprocess.run(
            [sys.executable, "-m", "contactd.cli", "check-config", "--config", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("contactd: error: "), done.stderr
