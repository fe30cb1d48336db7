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


# -- a messaging campaign asks for one channel -------------------------------------------------

MOBILE = "+4915112345678"


def _sms_facts(**changes: object) -> ContactFacts:
    values: dict[str, object] = {
        "sms_number": MOBILE,
        "mobile_number": MOBILE,
        "callable_number": "+4930123456",
    }
    values.update(changes)
    return ContactFacts(**values)  # type: ignore[arg-type]


def test_a_messaging_campaign_never_calls_and_defers_in_quiet_hours() -> None:
    wanted = Situation(window_open=True, requested=Channel.SMS)
    assert choose_channel(_sms_facts(), wanted).channel is Channel.SMS
    quiet = choose_channel(_sms_facts(), Situation(window_open=False, requested=Channel.SMS))
    assert (quiet.channel, quiet.reason, quiet.address) == (Channel.SMS, Reason.QUIET_HOURS, MOBILE)


def test_each_sms_blocker_is_named() -> None:
    wanted = Situation(window_open=True, requested=Channel.SMS)
    cases = {
        Reason.SMS_OPTED_OUT: _sms_facts(sms_number=None, sms_opted_out=True),
        Reason.NO_MOBILE: _sms_facts(sms_number=None, mobile_number=None),
        Reason.MOBILE_ON_DNC: _sms_facts(mobile_on_dnc=True),
        Reason.NO_SMS_CONSENT: _sms_facts(sms_number=None),
    }
    for reason, facts in cases.items():
        decision = choose_channel(facts, wanted)
        assert (decision.channel, decision.reason) == (Channel.NONE, reason)


def test_an_email_campaign_skips_an_opt_out_and_a_missing_address() -> None:
    wanted = Situation(window_open=True, requested=Channel.EMAIL)
    ok = choose_channel(ContactFacts(email_address="a@example.test"), wanted)
    assert (ok.channel, ok.reason) == (Channel.EMAIL, Reason.MESSAGE_ALLOWED)
    out = choose_channel(ContactFacts(email_opted_out=True), wanted)
    assert out.reason is Reason.EMAIL_OPTED_OUT and out.channel is Channel.NONE
    assert choose_channel(ContactFacts(), wanted).reason is Reason.NO_EMAIL


@given(opted_out=st.booleans(), on_dnc=st.booleans(), consent=st.booleans(), window=st.booleans())
def test_a_requested_sms_goes_only_to_a_consenting_mobile_off_the_dnc_list(
    opted_out: bool, on_dnc: bool, consent: bool, window: bool
) -> None:
    facts = _sms_facts(
        sms_number=MOBILE if consent and not opted_out else None,
        sms_opted_out=opted_out,
        mobile_on_dnc=on_dnc,
    )
    decision = choose_channel(facts, Situation(window_open=window, requested=Channel.SMS))
    allowed = consent and not opted_out and not on_dnc
    assert decision.channel is (Channel.SMS if allowed else Channel.NONE)
    if allowed:
        assert decision.reason is (Reason.MESSAGE_ALLOWED if window else Reason.QUIET_HOURS)
