"""The template commands, through argparse as the CLI wires them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from contactd.cli import EXIT_BAD_INPUT, EXIT_OK
from contactd.commands import messaging as commands


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="contactd")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def test_lists_the_builtin_templates(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["messaging", "templates"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "call_fallback: de (html/sms/subject/txt), en (html/sms/subject/txt)" in out


def test_preview_in_german(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["messaging", "preview", "call_fallback", "--language", "de-AT"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "template: call_fallback (de)" in out
    assert "Hallo Alex, wir haben versucht" in out


def test_preview_error_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "bad.en.sms.j2").write_text("{{ contact.nope }}")
    monkeypatch.setenv("CONTACTD_GENERAL__DATA_DIR", str(tmp_path))
    assert run(["messaging", "preview", "bad"]) == EXIT_BAD_INPUT
    assert "nope" in capsys.readouterr().err
