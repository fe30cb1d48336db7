"""The shipped message templates come in every language the panel offers, each part, and the
SMS names an opt-out word that works."""

from __future__ import annotations

import pytest

from contactd.config import WebSettings
from contactd.messaging.opt_out import is_opt_out
from contactd.messaging.templates import SAMPLE_CONTACT, TemplateStore

CAMPAIGN = {"id": 1, "name": "Spring renewals", "caller_id": "+265999123456", "message": ""}
OPT_OUT_WORD = {"en": "STOP", "de": "STOP", "ru": "СТОП", "ny": "STOP"}


@pytest.mark.parametrize("language", WebSettings().languages)
def test_the_call_fallback_comes_in_every_panel_language(language: str) -> None:
    assert set(TemplateStore().catalogue()["call_fallback"][language]) == {
        "sms",
        "subject",
        "txt",
        "html",
    }
    rendered = TemplateStore().render(
        "call_fallback", language, contact=SAMPLE_CONTACT, campaign=CAMPAIGN
    )
    assert rendered.language == language
    assert rendered.sms is not None and "+265999123456" in rendered.sms
    assert "Spring renewals" in rendered.subject and "Spring renewals" in rendered.text
    word = OPT_OUT_WORD[language]
    assert word in rendered.sms and is_opt_out(word)
