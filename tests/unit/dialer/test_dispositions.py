"""What each disposition does to a lead: final, the campaign's retry rule for the outcome it
names (with the attempt limit), a callback at the agent's time, or do-not-call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contactd.config import DialerSettings
from contactd.db.models.dialer import Campaign
from contactd.dialer.dispositions import KNOWN, TABLE, campaign_dispositions, decide
from contactd.dialer.policy import RetryRules
from contactd.enums import CampaignMode, LeadStatus
from contactd.errors import ValidationError

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
RULES = RetryRules(busy_s=900, no_answer_s=3600, machine_s=7200, max_attempts=3)


@pytest.mark.parametrize("name", ["sale", "not_interested", "wrong_number"])
def test_final_dispositions_end_the_lead(name: str) -> None:
    assert decide(TABLE[name], 1, RULES, NOW, None).status is LeadStatus.DONE


@pytest.mark.parametrize(("name", "delay_s"), [("busy", 900), ("no_answer", 3600),
                                               ("machine", 7200)])
def test_retry_dispositions_follow_the_campaign_rule_for_their_outcome(
    name: str, delay_s: int
) -> None:
    decision = decide(TABLE[name], 1, RULES, NOW, None)
    assert (decision.status, decision.next_attempt_at) == (
        LeadStatus.RETRY, NOW + timedelta(seconds=delay_s))


def test_a_retry_disposition_on_the_last_attempt_exhausts_the_lead() -> None:
    assert decide(TABLE["busy"], 3, RULES, NOW, None).status is LeadStatus.EXHAUSTED


def test_a_callback_is_due_at_the_agents_time_and_needs_one() -> None:
    at = NOW + timedelta(days=1, hours=3)
    decision = decide(TABLE["callback"], 1, RULES, NOW, at)
    assert (decision.status, decision.next_attempt_at) == (LeadStatus.CALLBACK, at)
    with pytest.raises(ValidationError, match="callback needs a date"):
        decide(TABLE["callback"], 1, RULES, NOW, None)
    with pytest.raises(ValidationError, match="time zone"):
        decide(TABLE["callback"], 1, RULES, NOW, datetime(2026, 12, 5, 9, 0))


def test_do_not_call() -> None:
    assert decide(TABLE["do_not_call"], 1, RULES, NOW, None).status is LeadStatus.DNC


def test_a_campaign_shows_its_own_buttons_else_the_configured_ones() -> None:
    settings = DialerSettings(dispositions=["sale", "callback"])
    plain = Campaign(name="a", mode=CampaignMode.PROGRESSIVE, dispositions=None)
    own = Campaign(name="b", mode=CampaignMode.PROGRESSIVE, dispositions=["busy", "sale"])
    assert [d.name for d in campaign_dispositions(plain, settings)] == ["sale", "callback"]
    assert [d.name for d in campaign_dispositions(own, settings)] == ["busy", "sale"]
    assert set(KNOWN) == set(DialerSettings().dispositions)


def test_an_unknown_configured_disposition_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="dispositions"):
        DialerSettings(dispositions=["sale", "maybe"])
