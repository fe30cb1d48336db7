"""`contactd asr fetch NAME`: put an official Vosk model where [speech] can load it."""

from __future__ import annotations

import argparse
from typing import Any

from contactd.cli import EXIT_OK, add_config_option, run_async, settings_from
from contactd.ivr.fetch import fetch_model


async def _fetch(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    model_dir = settings.speech.model_dir or settings.general.data_dir / "models"
    path = await fetch_model(args.name, model_dir, list_url=settings.speech.model_list_url)
    print(f"model {args.name} is in {path}; set [speech] vosk_model_path = \"{path}\"")
    return EXIT_OK


def register(sub: Any) -> None:
    asr = sub.add_parser("asr", help="speech recognition models")
    asub = asr.add_subparsers(dest="asr_command", metavar="COMMAND", required=True)
    fetch = asub.add_parser(
        "fetch",
        help="download an official Vosk model (checked against the model list's size and MD5)",
    )
    fetch.add_argument("name", help="model name, e.g. vosk-model-small-en-us-0.15")
    add_config_option(fetch)
    fetch.set_defaults(handler=lambda a: run_async(_fetch(a)))
