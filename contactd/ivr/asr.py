"""Speech recognition with Vosk: one model per process, recognizers per call, decoding in threads.

Facts this rests on (DESIGN §5): a model loads in 2–3.5 s and ~500 MB, so once per process,
from a path only; Vosk calls release the GIL, so a small pool of threads (about the cores)
decodes many grammar streams in real time, never the event loop; free-form decoding is ~5×
dearer, so free-form answers are recorded and transcribed afterwards by a bounded pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from contactd.errors import ConfigError

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 8000
UNKNOWN: Final = "[unk]"
# Free-form audio is fed in 1 s chunks: fewer thread hops, same result.
TRANSCRIBE_CHUNK_BYTES: Final = 16000


@dataclass(frozen=True, slots=True)
class Heard:
    """What a recognizer made of one utterance; `confidence` is the lowest word confidence."""

    text: str
    confidence: float

    @property
    def empty(self) -> bool:
        return not self.text or self.text == UNKNOWN


def _parse(raw: str) -> Heard:
    data = json.loads(raw)
    words = [w for w in data.get("result", []) if w.get("word") != UNKNOWN]
    text = " ".join(w["word"] for w in words) if words else data.get("text", "").strip()
    if UNKNOWN in text.split():
        text = " ".join(t for t in text.split() if t != UNKNOWN)
    confidence = min((float(w.get("conf", 0.0)) for w in words), default=0.0 if text else 1.0)
    return Heard(text, confidence)


def _check_model_path(path: Path) -> None:
    # Vosk answers a wrong path with a C++ log line and a bare Exception: say it in one line.
    if not path.is_dir():
        raise ConfigError(f"speech.vosk_model_path: {path} is not a folder", path=str(path))
    if not (path / "am").is_dir() and not (path / "final.mdl").exists():
        raise ConfigError(
            f"speech.vosk_model_path: {path} is not an unpacked Vosk model (no am/ folder)",
            path=str(path),
        )


class SpeechModel:
    """The process's Vosk model and its two thread pools; an async context manager."""

    def __init__(self, path: Path, *, workers: int = 2, transcribe_workers: int = 2) -> None:
        self.path = path
        self._workers = workers
        self._transcribe_workers = transcribe_workers
        self._model: Any = None
        self.pool: ThreadPoolExecutor | None = None
        self._transcribe_pool: ThreadPoolExecutor | None = None
        # Bounds free-form work waiting for a thread, so a burst queues in asyncio, not memory.
        self._transcribe_slots = asyncio.Semaphore(transcribe_workers)

    async def __aenter__(self) -> SpeechModel:
        _check_model_path(self.path)
        self.pool = ThreadPoolExecutor(self._workers, thread_name_prefix="contactd-asr")
        self._transcribe_pool = ThreadPoolExecutor(
            self._transcribe_workers, thread_name_prefix="contactd-transcribe"
        )
        loop = asyncio.get_running_loop()
        try:
            self._model = await loop.run_in_executor(self.pool, self._load)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for pool in (self.pool, self._transcribe_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self.pool = self._transcribe_pool = None

    def _load(self) -> Any:
        import vosk

        vosk.SetLogLevel(-2)  # -1 still prints per-recognizer warnings
        try:
            model = vosk.Model(str(self.path))
        except Exception as exc:  # vosk raises a bare Exception for every load failure
            raise ConfigError(
                f"speech.vosk_model_path: cannot load the Vosk model at {self.path}: {exc}",
                path=str(self.path),
            ) from exc
        log.info("vosk model loaded", extra={"path": str(self.path)})
        return model

    def recognizer(self, grammar: list[str] | None = None) -> GrammarRecognizer:
        """A per-call recognizer at 8 kHz; with `grammar`, only those phrases (and [unk])."""
        return GrammarRecognizer(self, grammar)

    def _new_kaldi(self, grammar: list[str] | None) -> Any:
        import vosk

        if grammar is None:
            rec = vosk.KaldiRecognizer(self._model, SAMPLE_RATE)
        else:
            rec = vosk.KaldiRecognizer(
                self._model, SAMPLE_RATE, json.dumps([*grammar, UNKNOWN], ensure_ascii=False)
            )
        rec.SetWords(True)
        return rec

    async def transcribe(self, pcm: bytes) -> Heard:
        """Free-form transcription of a recorded answer, off the real-time path."""
        if self._transcribe_pool is None:
            raise RuntimeError("SpeechModel used outside its context")
        async with self._transcribe_slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._transcribe_pool, self._transcribe_sync, pcm)

    def _transcribe_sync(self, pcm: bytes) -> Heard:
        rec = self._new_kaldi(None)
        for offset in range(0, len(pcm), TRANSCRIBE_CHUNK_BYTES):
            rec.AcceptWaveform(pcm[offset : offset + TRANSCRIBE_CHUNK_BYTES])
        return _parse(rec.FinalResult())


class GrammarRecognizer:
    """One call's recognizer; audio goes in through the model's pool, never on the loop."""

    def __init__(self, model: SpeechModel, grammar: list[str] | None) -> None:
        self._model = model
        self._grammar = grammar
        self._rec: Any = None
        self._dirty = False

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._model.pool is None:
            raise RuntimeError("SpeechModel used outside its context")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._model.pool, fn, *args)

    async def prepare(self) -> None:
        """Build the recognizer now (76–200 ms), while the prompt plays, not at first speech."""
        if self._rec is None:
            self._rec = await self._run(self._model._new_kaldi, self._grammar)
        elif self._dirty:
            await self._run(self._rec.Reset)
        self._dirty = False

    async def accept(self, pcm: bytes) -> None:
        if self._rec is None or self._dirty:
            await self.prepare()
        await self._run(self._rec.AcceptWaveform, pcm)

    async def final(self) -> Heard:
        """The utterance so far; the recognizer is reset lazily, off the decision's path."""
        if self._rec is None:
            return Heard("", 0.0)
        raw = await self._run(self._rec.FinalResult)
        self._dirty = True
        return _parse(raw)
