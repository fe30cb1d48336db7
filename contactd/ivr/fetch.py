"""`contactd asr fetch NAME`: an official Vosk model, downloaded, checked and unpacked.

The Vosk site publishes model-list.json (name, url, size, md5 per model); the zip is streamed
to a partial file with progress, its size and MD5 checked against the list, then unpacked
beside the others and moved into place, so a failed fetch never leaves a half model behind.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from contactd.errors import ContactdError, ValidationError

CHUNK_BYTES = 1 << 16
TIMEOUT_S = 60.0  # between bytes; a whole model may take minutes


class FetchError(ContactdError):
    code = "asr_fetch_failed"


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    url: str
    size: int
    md5: str


def _entry(listing: Any, name: str) -> ModelEntry:
    if not isinstance(listing, list):
        raise FetchError("the model list is not a JSON list")
    for item in listing:
        if isinstance(item, dict) and item.get("name") == name:
            try:
                return ModelEntry(name, str(item["url"]), int(item["size"]), str(item["md5"]))
            except (KeyError, ValueError) as exc:
                raise FetchError(f"the model list's entry for {name} lacks {exc}") from exc
    raise ValidationError(f"no Vosk model named {name!r} in the model list", field="name")


class Progress:
    """A one-line progress bar on a terminal, a line per 10% otherwise."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.out, self.done, self._shown = total, out, 0, -1

    def __call__(self, count: int) -> None:
        self.done += count
        percent = 100 * self.done // self.total if self.total else 100
        if self.out.isatty():
            bar = "#" * (percent // 4)
            self.out.write(f"\r[{bar:<25}] {percent:3d}% {self.done // 1_000_000} MB")
        elif percent // 10 != self._shown // 10:
            self.out.write(f"{percent}% ({self.done} of {self.total} bytes)\n")
        self._shown = percent
        self.out.flush()


async def fetch_model(
    name: str,
    model_dir: Path,
    *,
    list_url: str,
    progress: Callable[[int], None] | None = None,
    out: TextIO = sys.stderr,
) -> Path:
    """Download model `name` into `model_dir/name`; returns that folder."""
    target = _target(model_dir, name)
    timeout = aiohttp.ClientTimeout(sock_read=TIMEOUT_S, sock_connect=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            async with http.get(list_url) as reply:
                reply.raise_for_status()
                entry = _entry(await reply.json(content_type=None), name)
            with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=model_dir) as tmp:
                archive = Path(tmp) / "model.zip"
                digest = hashlib.md5(usedforsecurity=False)
                report = progress or Progress(entry.size, out)
                async with http.get(entry.url) as reply:
                    reply.raise_for_status()
                    with archive.open("wb") as sink:
                        async for chunk in reply.content.iter_chunked(CHUNK_BYTES):
                            sink.write(chunk)
                            digest.update(chunk)
                            report(len(chunk))
                size = archive.stat().st_size
                if size != entry.size:
                    raise FetchError(f"{name}: got {size} bytes, the list says {entry.size}")
                if digest.hexdigest() != entry.md5.lower():
                    raise FetchError(
                        f"{name}: checksum mismatch (MD5 {digest.hexdigest()}, list {entry.md5})"
                    )
                _unpack(archive, Path(tmp) / "unpacked", name)
                shutil.move(str(_model_root(Path(tmp) / "unpacked")), target)
        except aiohttp.ClientError as exc:
            raise FetchError(f"cannot download {name}: {exc}") from exc
    if out.isatty():
        out.write("\n")
    return target


def _target(model_dir: Path, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValidationError(f"not a model name: {name!r}", field="name")
    target = model_dir / name
    if target.exists():
        raise ValidationError(f"{target} exists already; remove it to fetch again", field="name")
    model_dir.mkdir(parents=True, exist_ok=True)
    return target


def _unpack(archive: Path, into: Path, name: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                resolved = (into / member).resolve()
                if not resolved.is_relative_to(into.resolve()):
                    raise FetchError(f"{name}: the archive writes outside its folder ({member})")
            zipped.extractall(into)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{name}: not a zip archive: {exc}") from exc


def _model_root(unpacked: Path) -> Path:
    # Official zips hold one folder named like the model; accept a flat archive too.
    entries = list(unpacked.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return unpacked
