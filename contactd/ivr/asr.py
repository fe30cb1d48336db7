"""Speech recognition with Vosk: one model per process, recognizers per call, decoding in threads.

Facts this rests on (DESIGN §5): a model loads in 2–3.5 s and ~500 MB, so once per process,
from a path only; Vosk calls release the GIL, so a small pool of threads (about the cores)
decodes many grammar streams in real time, never the event loop; free-form decoding is ~5×
dearer, so free-form answers are recorded and transcribed afterwards by a bounded pool.

Free-form recognizers are recycled too, and that is most of their cost: the ko model's
free-form graph is composed on the fly (HCLr ∘ Gr) and each recognizer caches the composed
states it visits. A new recognizer pays for that cache — measured ~0.6 s of CPU per second of
audio on these machines, plus 80–100 ms to build — while one that has already decoded a few
answers needs 0.10–0.14 s per second. After `FinalResult` Vosk builds a new decoder and
feature pipeline and only the cache carries over; its transcript of the same audio can still
differ from a new recognizer's by a word now and then (measured: 1 repeat in 3 on one answer),
with the same error rate over the bench's answers.

Grammar recognizers are kept warm: a turn borrows an idle recognizer built for the same phrase
list and gives it back after its final result (Vosk resets it on the next audio), so a menu
asked a thousand times builds its recognizer a handful of times. The grammar threads run a
final result before any queued audio feed (`workers.PriorityPool`): the caller who has stopped
speaking is the one waiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from contactd.errors import ConfigError
from contactd.ivr.workers import NORMAL, URGENT, PriorityPool

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 8000
UNKNOWN: Final = "[unk]"
# Free-form audio is fed in 1 s chunks: fewer thread hops, same result.
TRANSCRIBE_CHUNK_BYTES: Final = 16000
# Warm recognizers kept per phrase list, and phrase lists kept: enough for every concurrent
# turn of a few flows, bounded so an odd flow cannot grow memory without end.
IDLE_PER_GRAMMAR: Final = 64
GRAMMARS_KEPT: Final = 32


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


class ModelLoadError(ConfigError):
    """The folder looks like a Vosk model but Vosk could not load it (damaged, out of memory).

    Unlike a wrong path, the daemon keeps running on keys only and reports itself degraded.
    """

    code = "speech_model_load_failed"


class SpeechModel:
    """The process's Vosk model and its two thread pools; an async context manager."""

    def __init__(self, path: Path, *, workers: int = 2, transcribe_workers: int = 2) -> None:
        self.path = path
        self._workers = workers
        self._transcribe_workers = transcribe_workers
        self._model: Any = None
        self.pool: PriorityPool | None = None
        self._transcribe_pool: ThreadPoolExecutor | None = None
        # Set on exit: a transcription running then stops at its next second of audio and one
        # still queued stops as it starts (its caller hears why), so a stop (Ctrl-C, systemd)
        # does not wait for long recordings to be decoded.
        self._stopping = threading.Event()
        # Bounds free-form work waiting for a thread, so a burst queues in asyncio, not memory.
        self._transcribe_slots = asyncio.Semaphore(transcribe_workers)
        # Phrase list (as JSON) → idle warm recognizers; touched on the event loop only.
        self._idle: OrderedDict[str, list[Any]] = OrderedDict()
        self.recognizers_built = 0
        # Warm free-form recognizers, taken and given back by the transcribe threads.
        self._free_idle: list[Any] = []
        self._free_lock = threading.Lock()
        self.free_recognizers_built = 0
        self.load_error: str = ""

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def busy(self) -> int:
        return self.pool.busy if self.pool is not None else 0

    @property
    def waiting(self) -> int:
        """Grammar jobs queued for a thread: above zero for long means the pool is behind."""
        return self.pool.waiting if self.pool is not None else 0

    async def __aenter__(self) -> SpeechModel:
        try:
            _check_model_path(self.path)
        except ConfigError as exc:
            self.load_error = str(exc)
            raise
        self.pool = PriorityPool(self._workers, name="contactd-asr")
        self._transcribe_pool = ThreadPoolExecutor(
            self._transcribe_workers, thread_name_prefix="contactd-transcribe"
        )
        try:
            self._model = await asyncio.wrap_future(self.pool.submit(URGENT, self._load))
        except BaseException as exc:
            self.load_error = str(exc)
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping.set()
        pool, transcribe_pool = self.pool, self._transcribe_pool
        self.pool = self._transcribe_pool = None

        def join() -> None:
            if pool is not None:
                pool.shutdown()
            if transcribe_pool is not None:
                transcribe_pool.shutdown(wait=True)

        # Off the loop: joining threads blocks, and other parts are stopping meanwhile.
        await asyncio.to_thread(join)
        self._idle.clear()
        self._free_idle.clear()

    def _load(self) -> Any:
        import vosk

        vosk.SetLogLevel(-2)  # -1 still prints per-recognizer warnings
        try:
            model = vosk.Model(str(self.path))
        except Exception as exc:  # vosk raises a bare Exception for every load failure
            raise ModelLoadError(
                f"speech.vosk_model_path: cannot load the Vosk model at {self.path}: {exc}",
                path=str(self.path),
            ) from exc
        log.info("vosk model loaded", extra={"path": str(self.path)})
        return model

    def recognizer(self, grammar: list[str] | None = None) -> GrammarRecognizer:
        """A per-call recognizer at 8 kHz; with `grammar`, only those phrases (and [unk])."""
        return GrammarRecognizer(self, grammar)

    def _borrow(self, key: str) -> Any | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        self._idle.move_to_end(key)
        return idle.pop()

    def _give_back(self, key: str, rec: Any) -> None:
        idle = self._idle.setdefault(key, [])
        self._idle.move_to_end(key)
        if len(idle) < IDLE_PER_GRAMMAR:
            idle.append(rec)
        while len(self._idle) > GRAMMARS_KEPT:
            self._idle.popitem(last=False)

    def _new_kaldi(self, grammar: list[str] | None) -> Any:
        import vosk

        self.recognizers_built += 1
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
        with self._free_lock:
            rec = self._free_idle.pop() if self._free_idle else None
        if rec is None:
            rec = self._new_kaldi(None)
            self.free_recognizers_built += 1
        for offset in range(0, len(pcm), TRANSCRIBE_CHUNK_BYTES):
            if self._stopping.is_set():
                # Half-fed: dropped, never given back.
                raise TranscriptionStoppedError(
                    f"stopped with {(len(pcm) - offset) / 16000:.1f} s of audio not decoded"
                )
            rec.AcceptWaveform(pcm[offset : offset + TRANSCRIBE_CHUNK_BYTES])
        heard = _parse(rec.FinalResult())
        with self._free_lock:
            # One per transcribe thread is all that can be busy at once.
            if len(self._free_idle) < self._transcribe_workers:
                self._free_idle.append(rec)
        return heard


class TranscriptionStoppedError(Exception):
    """The speech model was closed while a free-form answer was being transcribed."""


class GrammarRecognizer:
    """One turn's recognizer; audio goes in through the model's pool, never on the loop.

    It borrows a warm Vosk recognizer for its phrase list and gives it back in `release`
    (called when the turn ends, on every path). Only a recognizer whose utterance was closed
    by `FinalResult` goes back: Vosk then starts the next one from a fresh decoder, whereas
    its `Reset()` keeps the feature pipeline, so a turn cut short by a key would leak its
    half-heard speech into the next caller's answer. A recognizer still inside a thread call
    when the turn ends (a cancelled turn) is dropped too, never shared.
    """

    def __init__(self, model: SpeechModel, grammar: list[str] | None) -> None:
        self._model = model
        self._grammar = grammar
        self._key = json.dumps(grammar, ensure_ascii=False)
        self._rec: Any = None
        self._fed = False  # audio went in since the last final result
        self._last: Future[Any] | None = None

    async def _run(self, priority: int, fn: Any, *args: Any) -> Any:
        if self._model.pool is None:
            raise RuntimeError("SpeechModel used outside its context")
        self._last = self._model.pool.submit(priority, fn, *args)
        return await asyncio.wrap_future(self._last)

    async def prepare(self) -> None:
        """Have a recognizer ready while the prompt plays, not at first speech."""
        if self._rec is None:
            self._rec = self._model._borrow(self._key)
        if self._rec is None:
            self._rec = await self._run(NORMAL, self._model._new_kaldi, self._grammar)

    async def accept(self, pcm: bytes) -> None:
        await self.prepare()
        self._fed = True
        await self._run(NORMAL, self._rec.AcceptWaveform, pcm)

    async def final(self) -> Heard:
        """The utterance so far, ahead of every queued audio feed."""
        if self._rec is None or not self._fed:
            # Nothing said; a finished Vosk recognizer would repeat its last result.
            return Heard("", 0.0)
        raw = await self._run(URGENT, self._rec.FinalResult)
        self._fed = False
        return _parse(raw)

    def release(self) -> None:
        """Give the recognizer back for the next turn with the same phrases."""
        rec, self._rec = self._rec, None
        if rec is None or self._model.pool is None or self._fed:
            return
        if self._last is not None and not self._last.done():
            return  # a thread still holds it
        self._model._give_back(self._key, rec)
