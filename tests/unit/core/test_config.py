"""Configuration: TOML plus CONTACTD_* overrides, validated with one clear line per problem."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from contactd.config import load_settings
from contactd.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "contactd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_valid_and_use_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    settings = load_settings(None, {"CONTACTD_GENERAL__DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'contactd.db'}"
    assert settings.web.port == 8080
    assert settings.dialer.window_start == time(8, 0)


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, '[web]\nport = 9000\n[dialer]\nwindow_end = "20:30"\n')
    settings = load_settings(path, {})
    assert settings.web.port == 9000
    assert settings.dialer.window_end == time(20, 30)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[ami]\nport = 5038\nsecret = 'from-file'\n")
    settings = load_settings(path, {"CONTACTD_AMI__PORT": "15038", "CONTACTD_AMI__SECRET": "env"})
    assert settings.ami.port == 15038
    assert settings.ami.secret.get_secret_value() == "env"


def test_relative_data_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[general]\ndata_dir = 'var'\n")
    assert load_settings(path, {}).general.data_dir == tmp_path / "var"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[web]\nport = 'eighty'\n", "web.port"),
        ("[web]\nport = 70000\n", "web.port"),
        ("[general]\ntimezone = 'Mars/Olympus'\n", "general.timezone: unknown IANA time zone"),
        ("[dialer]\nring_timeout_s = 10\n", "dialer.ring_timeout_s"),
        ("[dialer]\nwindow_start = '21:00'\nwindow_end = '08:00'\n", "window_end must be later"),
        ("[database]\nurl = 'mysql://x'\n", "database.url: expected a URL starting with"),
        ("[webb]\nport = 1\n", "unknown setting 'webb'"),
        ("[web]\nprot = 1\n", "unknown setting 'web.prot'"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    message = str(info.value)
    assert expected in message
    assert message.startswith(str(path))
    assert "\n" not in message


def test_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"CONTACTD_AMI__PORT: ami\.port"):
        load_settings(None, {"CONTACTD_AMI__PORT": "not-a-port"})


def test_malformed_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[web\nport=1"), {})
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "nope.toml", {})


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    path = write(tmp_path, "[ami]\nsecret = 'hunter2-very-secret'\nport = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert "hunter2" not in str(info.value)
    settings = load_settings(write(tmp_path, "[ami]\nsecret = 'hunter2-very-secret'\n"), {})
    assert "hunter2" not in repr(settings)
    bad_url = "postgresql+asyncpg://u:topsecret@h/db"
    shown = repr(load_settings(None, {"CONTACTD_DATABASE__URL": bad_url}))
    assert "topsecret" not in shown


def test_the_shipped_example_is_valid() -> None:
    example = Path(__file__).parents[3] / "contactd.example.toml"
    settings = load_settings(example, {})
    assert settings.ami.enabled
