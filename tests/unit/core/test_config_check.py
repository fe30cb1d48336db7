"""`check-config` warns about placeholder or empty secrets without printing them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from contactd.config import load_settings
from contactd.config_check import warnings

ROOT = Path(__file__).parents[3]
EXAMPLE = ROOT / "contactd.example.toml"


def test_the_example_file_is_flagged() -> None:
    found = warnings(load_settings(EXAMPLE, {}))
    assert any(w.startswith("ami.secret is still the example's placeholder") for w in found)
    assert any(w.startswith("web.secret_key is empty") for w in found)


def test_real_secrets_give_no_warning() -> None:
    env = {"CONTACTD_AMI__SECRET": "x7Qp-real-one", "CONTACTD_WEB__SECRET_KEY": "k" * 40}
    assert warnings(load_settings(EXAMPLE, env)) == []


def test_a_disabled_part_is_not_flagged() -> None:
    env = {"CONTACTD_AMI__ENABLED": "false", "CONTACTD_WEB__ENABLED": "false"}
    assert warnings(load_settings(None, env)) == []


def test_check_config_prints_the_warnings(tmp_path: Path) -> None:
    config = tmp_path / "contactd.toml"
    config.write_text("[ami]\nsecret = 'CHANGE-ME-contactd-ami-secret'\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTD_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "contactd.cli", "check-config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "warning: ami.secret is still the example's placeholder" in lines[0]
    assert any("web.secret_key is empty" in line for line in lines)
    assert "CHANGE-ME-contactd" not in done.stderr + done.stdout
