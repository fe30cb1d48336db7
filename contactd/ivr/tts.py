"""Prompts made offline: espeak-ng (via pyttsx3's binding) resampled to 8 kHz slin, cached.

libespeak-ng is blocking and keeps one engine per process, so every synthesis runs in one
dedicated thread. espeak-ng writes 22,050 Hz WAV (DESIGN §5); AudioSocket wants 8 kHz signed 16-bit
mono, so each prompt is resampled once and the result cached by (text, voice, language).
A recorded WAV may replace any prompt; it is read and resampled the same way.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import logging
import math
import operator
import os
import wave
from array import array
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from contactd.errors import ConfigError, ContactdError

log = logging.getLogger(__name__)

SLIN_RATE: Final = 8000
# Taps on each side of the interpolation point; 16 keeps the 4 kHz band clean enough for
# telephone speech while one prompt still resamples in well under a second.
HALF_TAPS: Final = 16
# Bump when the synthesis or resampling changes, so old cached prompts are not reused.
CACHE_FORMAT: Final = "slin8k-v1"


class PromptError(ContactdError):
    """A prompt cannot be made: a bad recording, or espeak-ng failed."""

    code = "ivr_prompt_invalid"


@lru_cache(maxsize=8)
def _filter_bank(up: int, down: int) -> tuple[tuple[float, ...], ...]:
    """Windowed-sinc taps for each of `up` output phases (rate change up/down, reduced)."""
    cutoff = min(1.0, up / down) * 0.92  # below the lower Nyquist, leaving a transition band
    bank = []
    for phase in range(up):
        frac = phase / up  # output n sits at input n*down/up = base + phase/up
        taps = []
        for k in range(-HALF_TAPS + 1, HALF_TAPS + 1):
            x = k - frac
            sinc = 1.0 if x == 0 else math.sin(math.pi * cutoff * x) / (math.pi * cutoff * x)
            window = 0.5 + 0.5 * math.cos(math.pi * x / HALF_TAPS)  # Hann
            taps.append(cutoff * sinc * window if abs(x) < HALF_TAPS else 0.0)
        bank.append(tuple(taps))
    return tuple(bank)


def resample(pcm: bytes, rate_in: int, rate_out: int = SLIN_RATE) -> bytes:
    """Band-limited resampling of signed 16-bit little-endian mono PCM."""
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} → {rate_out}")
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if rate_in == rate_out:
        return samples.tobytes()
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    bank = _filter_bank(up, down)
    padded = [0] * HALF_TAPS + samples.tolist() + [0] * HALF_TAPS
    out = array("h")
    count = len(samples) * up // down
    for n in range(count):
        base, phase = divmod(n * down, up)
        start = base + 1  # padded index of sample base - HALF_TAPS + 1
        value = sum(map(operator.mul, padded[start : start + 2 * HALF_TAPS], bank[phase]))
        out.append(max(-32768, min(32767, round(value))))
    return out.tobytes()


def read_wav(path: Path) -> bytes:
    """A recorded prompt as 8 kHz slin; anything but 16-bit mono PCM is refused by name."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise PromptError(
                    f"{path}: prompt recordings must be 16-bit mono WAV, got "
                    f"{wav.getnchannels()} channel(s) of {8 * wav.getsampwidth()} bits",
                    path=str(path),
                )
            rate = wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise PromptError(f"{path}: cannot read prompt recording: {exc}", path=str(path)) from exc
    return resample(pcm, rate)


class Tts:
    """Speaks text into cached 8 kHz prompts; an async context manager owning its thread."""

    def __init__(self, cache_dir: Path, *, default_voice: str = "", language: str = "en") -> None:
        self.cache_dir = cache_dir
        self.default_voice = default_voice
        self.default_language = language
        self._executor: ThreadPoolExecutor | None = None
        self._engine: Any = None
        self._rate = 0
        self._voices: frozenset[str] = frozenset()
        self._locks: dict[Path, asyncio.Lock] = {}
        self.synthesized = 0  # prompts actually spoken by espeak-ng (cache misses)

    async def __aenter__(self) -> Tts:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"prompt cache folder {self.cache_dir} is not writable: {exc}"
            ) from exc
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="contactd-tts")
        loop = asyncio.get_running_loop()
        self._voices = await loop.run_in_executor(self._executor, self._init_engine)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _init_engine(self) -> frozenset[str]:
        # pyttsx3's own espeak driver (2.99) writes the WAV from inside espeak's callback, loses
        # the last chunk and can return from runAndWait before the file exists (seen here with
        # long Korean prompts). Its ctypes binding to libespeak-ng in synchronous mode has none
        # of that: Synth() returns when every sample has reached our callback.
        try:
            from pyttsx3.drivers import _espeak
        except (ImportError, OSError) as exc:
            raise ConfigError(
                f"text-to-speech cannot start (is libespeak-ng1 installed?): {exc}"
            ) from exc
        rate = _espeak.Initialize(_espeak.AUDIO_OUTPUT_SYNCHRONOUS, 500)
        if rate <= 0:
            raise ConfigError("text-to-speech cannot start: espeak-ng failed to initialise")
        self._rate = rate
        self._chunks: list[bytes] = []

        def collect(wav: Any, count: int, events: Any) -> int:
            if count > 0:
                self._chunks.append(ctypes.string_at(wav, count * 2))
            return 0

        self._engine = _espeak
        self._callback = collect  # keep a reference: espeak calls it through ctypes
        _espeak.SetSynthCallback(collect)
        names: set[str] = set()
        for voice in _espeak.ListVoices(None):
            identifier = voice.identifier.decode("utf-8").lower()
            names.add(identifier)
            names.add(identifier.rsplit("/", 1)[-1])
        return frozenset(names)

    def check_voice(self, voice: str) -> None:
        """A ConfigError naming `voice` when espeak-ng has no such voice."""
        if voice not in self._voices:
            raise ConfigError(f"espeak-ng has no voice {voice!r}", voice=voice)

    def cache_path(self, text: str, voice: str, language: str) -> Path:
        key = "\x00".join((CACHE_FORMAT, voice, language, text)).encode()
        return self.cache_dir / f"{hashlib.sha256(key).hexdigest()}.slin"

    async def speak(self, text: str, *, voice: str = "", language: str = "") -> bytes:
        """8 kHz slin for `text`, from the cache or made now (in the TTS thread)."""
        language = language or self.default_language
        voice = voice or self.default_voice or language
        self.check_voice(voice)
        path = self.cache_path(text, voice, language)
        lock = self._locks.setdefault(path, asyncio.Lock())
        async with lock:  # two calls wanting the same new prompt make it once
            try:
                return path.read_bytes()
            except FileNotFoundError:
                pass
            if self._executor is None:
                raise RuntimeError("Tts used outside its context")
            loop = asyncio.get_running_loop()
            pcm = await loop.run_in_executor(self._executor, self._synthesize, text, voice, path)
            self.synthesized += 1
            log.info(
                "prompt synthesized",
                extra={"voice": voice, "language": language, "bytes": len(pcm)},
            )
            return pcm

    def _synthesize(self, text: str, voice: str, path: Path) -> bytes:
        espeak = self._engine
        if espeak.SetVoiceByName(voice.rsplit("/", 1)[-1].encode()) != espeak.EE_OK:
            raise PromptError(f"espeak-ng cannot select voice {voice!r}", voice=voice)
        self._chunks.clear()
        espeak.Synth(text.encode("utf-8"), flags=espeak.CHARS_UTF8 | espeak.ENDPAUSE)
        raw = b"".join(self._chunks)
        self._chunks.clear()
        if not raw:
            raise PromptError(f"espeak-ng produced no audio for {text!r} ({voice})", voice=voice)
        pcm = resample(raw, self._rate)
        # Write then rename: a crash mid-write never leaves a truncated prompt in the cache.
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(pcm)
        partial.replace(path)
        return pcm
