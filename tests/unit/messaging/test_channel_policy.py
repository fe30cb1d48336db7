"""The pure channel policy: examples for each reason, and properties over every input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from contactd.enums import CallOutcome, Channel
from contactd.messaging.policy import ContactFacts, Reason, Situation, choose_channel

FULL = ContactFacts(
    callable_number="+4930123456",
    sms_number="+4915112345678",
    email_address="zoe@example.test",
)
OPEN = Situation(window_open=True, fallback_channel=Channel.SMS)


def test_calls_when_everything_allows_it() -> None:
    decision = choose_channel(FULL, OPEN)
    assert (decision.channel, decision.reason, decision.address) == (
        Channel.CALL,
        Reason.CALL_ALLOWED,
        "+4930123456",
    )


def test_outside_the_window_texts_instead() -> None:
    decision = choose_channel(FULL, Situation(window_open=False))
    assert (decision.channel, decision.reason) == (Channel.SMS, Reason.OUTSIDE_WINDOW)
    assert decision.address == "+4915112345678"


def test_dnc_number_without_sms_consent_gets_email() -> None:
    facts = ContactFacts(
        callable_number="+4930123456", number_on_dnc=True, email_address="a@example.test"
    )
    decision = choose_channel(facts, OPEN)
    assert (decision.channel, decision.reason) == (Channel.EMAIL, Reason.ON_DNC)


def test_contact_preferring_email_is_emailed_first() -> None:
    facts = ContactFacts(**{**FULL.__dict__, "preferred_channel": Channel.EMAIL})
    decision = choose_channel(facts, OPEN)
    assert (decision.channel, decision.reason) == (Channel.EMAIL, Reason.PREFERS_EMAIL)


def test_revoked_call_consent_blocks_calls() -> None:
    facts = ContactFacts(**{**FULL.__dict__, "call_consent_revoked": True})
    assert choose_channel(facts, OPEN).reason is Reason.CALL_OPTED_OUT


def test_machine_answer_falls_back_as_the_campaign_says() -> None:
    situation = Situation(
        window_open=True, last_outcome=CallOutcome.MACHINE, fallback_channel=Channel.EMAIL
    )
    decision = choose_channel(FULL, situation)
    assert (decision.channel, decision.reason) == (Channel.EMAIL, Reason.MACHINE_ANSWERED)


def test_exhausted_attempts_without_campaign_fallback_leave_the_contact_alone() -> None:
    situation = Situation(window_open=True, failed_call_attempts=3, fallback_channel=None)
    decision = choose_channel(FULL, situation)
    assert (decision.channel, decision.reason) == (Channel.NONE, Reason.NO_FALLBACK)


def test_fallback_channel_unavailable_tries_the_other_one() -> None:
    facts = ContactFacts(callable_number="+4930123456", email_address="a@example.test")
    situation = Situation(window_open=True, failed_call_attempts=5, fallback_channel=Channel.SMS)
    decision = choose_channel(facts, situation)
    assert (decision.channel, decision.reason) == (Channel.EMAIL, Reason.ATTEMPTS_EXHAUSTED)


def test_nobody_reachable_is_none_with_the_reason_kept() -> None:
    decision = choose_channel(ContactFacts(), Situation(window_open=True))
    assert (decision.channel, decision.reason) == (Channel.NONE, Reason.UNREACHABLE)
    assert decision.details["why_not"] == Reason.NO_PHONE.value


numbers = st.one_of(st.none(), st.just("+4930123456"))
facts_strategy = st.builds(
    ContactFacts,
    callable_number=numbers,
    number_on_dnc=st.booleans(),
    call_consent_revoked=st.booleans(),
    sms_number=st.one_of(st.none(), st.just("+4915112345678")),
    email_address=st.one_of(st.none(), st.just("zoe@example.test")),
    preferred_channel=st.one_of(st.none(), st.sampled_from(list(Channel))),
)
situations = st.builds(
    Situation,
    window_open=st.booleans(),
    failed_call_attempts=st.integers(0, 10),
    last_outcome=st.one_of(st.none(), st.sampled_from(list(CallOutcome))),
    max_call_attempts=st.integers(1, 5),
    fallback_channel=st.one_of(st.none(), st.sampled_from(list(Channel))),
)


@given(facts_strategy, situations)
def test_a_call_is_only_chosen_when_every_condition_holds(
    facts: ContactFacts, situation: Situation
) -> None:
    decision = choose_channel(facts, situation)
    if decision.channel is Channel.CALL:
        assert situation.window_open and facts.callable_number
        assert not facts.number_on_dnc and not facts.call_consent_revoked
        assert facts.preferred_channel in (None, Channel.CALL, Channel.WEB, Channel.NONE)
        assert situation.last_outcome is not CallOutcome.MACHINE
        assert situation.failed_call_attempts < situation.max_call_attempts
        assert decision.address == facts.callable_number


@given(facts_strategy, situations)
def test_messages_only_go_where_consent_and_an_address_exist(
    facts: ContactFacts, situation: Situation
) -> None:
    decision = choose_channel(facts, situation)
    if decision.channel is Channel.SMS:
        assert decision.address == facts.sms_number is not None
    elif decision.channel is Channel.EMAIL:
        assert decision.address == facts.email_address is not None
    elif decision.channel is Channel.NONE:
        assert decision.address is None
    assert decision.channel is not Channel.WEB
    assert decision.reason.value  # every decision carries a stored reason code
