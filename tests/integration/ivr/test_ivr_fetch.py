"""`contactd asr fetch` against a local HTTP server serving a model list and a small zip."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from contactd.errors import ValidationError
from contactd.ivr.fetch import FetchError, fetch_model
from tests.peers.ports import free_port

REPO = Path(__file__).resolve().parents[3]


def small_model_zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr(f"{name}/am/final.mdl", b"acoustic model")
        zipped.writestr(f"{name}/conf/model.conf", b"--sample-frequency=8000\n")
    return buffer.getvalue()


class ModelSite:
    def __init__(self, base: str) -> None:
        self.base = base
        self.archives: dict[str, bytes] = {}
        self.listed_md5: dict[str, str] = {}

    def listing(self) -> list[dict[str, object]]:
        return [
            {
                "name": name,
                "url": f"{self.base}/{name}.zip",
                "size": len(data),
                "md5": self.listed_md5.get(name, hashlib.md5(data).hexdigest()),
                "lang": "ko",
            }
            for name, data in self.archives.items()
        ]


@pytest.fixture
async def site() -> AsyncIterator[ModelSite]:
    port = free_port()
    models = ModelSite(f"http://127.0.0.1:{port}")

    async def listing(request: web.Request) -> web.Response:
        return web.json_response(models.listing())

    async def archive(request: web.Request) -> web.Response:
        return web.Response(body=models.archives[request.match_info["name"]])

    app = web.Application()
    app.router.add_get("/model-list.json", listing)
    app.router.add_get("/{name}.zip", archive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield models
    finally:
        await runner.cleanup()


async def test_a_listed_model_is_downloaded_checked_and_unpacked(
    site: ModelSite, tmp_path: Path
) -> None:
    site.archives["vosk-model-tiny"] = small_model_zip("vosk-model-tiny")
    seen: list[int] = []
    path = await fetch_model(
        "vosk-model-tiny", tmp_path, list_url=f"{site.base}/model-list.json", progress=seen.append
    )
    assert path == tmp_path / "vosk-model-tiny"
    assert (path / "am" / "final.mdl").read_bytes() == b"acoustic model"
    assert sum(seen) == len(site.archives["vosk-model-tiny"])


async def test_a_checksum_mismatch_leaves_nothing_behind(site: ModelSite, tmp_path: Path) -> None:
    site.archives["vosk-model-tiny"] = small_model_zip("vosk-model-tiny")
    site.listed_md5["vosk-model-tiny"] = "0" * 32
    with pytest.raises(FetchError, match="checksum mismatch"):
        await fetch_model("vosk-model-tiny", tmp_path, list_url=f"{site.base}/model-list.json")
    assert os.listdir(tmp_path) == []  # no partial download, no half-unpacked model


async def test_an_unknown_model_name_is_refused(site: ModelSite, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no Vosk model named 'nope'"):
        await fetch_model("nope", tmp_path, list_url=f"{site.base}/model-list.json")


async def test_the_cli_fetches_with_progress(site: ModelSite, tmp_path: Path) -> None:
    site.archives["vosk-model-tiny"] = small_model_zip("vosk-model-tiny")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_SPEECH__MODEL_LIST_URL": f"{site.base}/model-list.json",
    }
    proc = await asyncio_subprocess(
        [sys.executable, "-m", "contactd.cli", "asr", "fetch", "vosk-model-tiny"], env
    )
    assert proc.returncode == 0, proc.stderr
    assert "100%" in proc.stderr
    assert (tmp_path / "models" / "vosk-model-tiny" / "am" / "final.mdl").exists()
    assert json.dumps(str(tmp_path / "models" / "vosk-model-tiny"))[1:-1] in proc.stdout


async def asyncio_subprocess(
    argv: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return subprocess.CompletedProcess(
        argv, -1 if proc.returncode is None else proc.returncode, out.decode(), err.decode()
    )
