"""Channel choice: call, text, email or leave alone. Pure: facts in, a decision with a reason out.

Order of preference: a call when the calling window is open, the number is callable, not on a
do-not-call list, call consent is not revoked and the contact does not prefer another channel;
otherwise an SMS to a mobile with SMS consent; otherwise an email with email consent. After the
campaign's number of failed call attempts, or when a machine answered, the campaign's fallback
channel is tried first (a campaign without one means: leave the contact alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from contactd.enums import CallOutcome, Channel


class Reason(StrEnum):
    CALL_ALLOWED = "call_allowed"
    PREFERS_SMS = "prefers_sms"
    PREFERS_EMAIL = "prefers_email"
    OUTSIDE_WINDOW = "outside_calling_window"
    NO_PHONE = "no_callable_number"
    ON_DNC = "number_on_dnc"
    CALL_OPTED_OUT = "call_consent_revoked"
    ATTEMPTS_EXHAUSTED = "call_attempts_exhausted"
    MACHINE_ANSWERED = "machine_answered"
    NO_FALLBACK = "campaign_has_no_fallback"
    UNREACHABLE = "no_permitted_channel"
    # A messaging campaign's answers (Situation.requested):
    MESSAGE_ALLOWED = "message_allowed"
    QUIET_HOURS = "quiet_hours"
    SMS_OPTED_OUT = "sms_opted_out"
    NO_SMS_CONSENT = "no_sms_consent"
    NO_MOBILE = "no_mobile_number"
    MOBILE_ON_DNC = "mobile_on_dnc"
    EMAIL_OPTED_OUT = "email_opted_out"
    NO_EMAIL = "no_email_address"


@dataclass(frozen=True)
class ContactFacts:
    """What is known about one contact at the moment of choosing."""

    callable_number: str | None = None  # a valid number to dial, if any
    number_on_dnc: bool = False
    call_consent_revoked: bool = False
    sms_number: str | None = None  # a mobile number whose SMS consent is granted
    email_address: str | None = None  # an address whose email consent is not revoked
    preferred_channel: Channel | None = None
    mobile_number: str | None = None  # a mobile number, whatever its SMS consent
    sms_opted_out: bool = False  # SMS consent revoked (a STOP reply, a request)
    mobile_on_dnc: bool = False
    email_opted_out: bool = False


@dataclass(frozen=True)
class Situation:
    window_open: bool  # the calling window (stricter of contact and campaign) is open now
    failed_call_attempts: int = 0
    last_outcome: CallOutcome | None = None
    max_call_attempts: int = 3  # the campaign's N
    fallback_channel: Channel | None = None  # the campaign's fallback; None: no fallback
    requested: Channel | None = None  # a messaging campaign's channel (SMS or EMAIL) or None


@dataclass(frozen=True)
class Decision:
    channel: Channel
    reason: Reason
    address: str | None = None
    details: dict[str, str] = field(default_factory=dict)


def _message_channel(facts: ContactFacts, channel: Channel) -> str | None:
    if channel is Channel.SMS:
        return facts.sms_number
    if channel is Channel.EMAIL:
        return facts.email_address
    return None


def _first_reachable(
    facts: ContactFacts, order: list[Channel], reason: Reason, details: dict[str, str]
) -> Decision:
    for channel in dict.fromkeys(order):
        address = _message_channel(facts, channel)
        if address:
            return Decision(channel, reason, address, details)
    return Decision(Channel.NONE, Reason.UNREACHABLE, None, {**details, "why_not": reason.value})


def _call_blocker(facts: ContactFacts, situation: Situation) -> Reason | None:
    if facts.callable_number is None:
        return Reason.NO_PHONE
    if facts.number_on_dnc:
        return Reason.ON_DNC
    if facts.call_consent_revoked:
        return Reason.CALL_OPTED_OUT
    if facts.preferred_channel is Channel.SMS:
        return Reason.PREFERS_SMS
    if facts.preferred_channel is Channel.EMAIL:
        return Reason.PREFERS_EMAIL
    if not situation.window_open:
        return Reason.OUTSIDE_WINDOW
    return None


def _requested_blocker(facts: ContactFacts, channel: Channel) -> Reason | None:
    if channel is Channel.SMS:
        if facts.sms_opted_out:
            return Reason.SMS_OPTED_OUT
        if facts.mobile_number is None:
            return Reason.NO_MOBILE
        if facts.mobile_on_dnc:
            return Reason.MOBILE_ON_DNC
        if facts.sms_number is None:
            return Reason.NO_SMS_CONSENT
        return None
    if facts.email_opted_out:
        return Reason.EMAIL_OPTED_OUT
    if facts.email_address is None:
        return Reason.NO_EMAIL
    return None


def _requested(facts: ContactFacts, situation: Situation, channel: Channel) -> Decision:
    """A messaging campaign: its channel or nothing; quiet hours defer, they do not skip."""
    blocker = _requested_blocker(facts, channel)
    if blocker is not None:
        return Decision(Channel.NONE, blocker, None, {"requested": channel.value})
    address = _message_channel(facts, channel)
    reason = Reason.MESSAGE_ALLOWED if situation.window_open else Reason.QUIET_HOURS
    return Decision(channel, reason, address, {"requested": channel.value})


def choose_channel(facts: ContactFacts, situation: Situation) -> Decision:
    requested = situation.requested
    if requested is Channel.SMS or requested is Channel.EMAIL:
        return _requested(facts, situation, requested)
    messages = [Channel.SMS, Channel.EMAIL]
    if facts.preferred_channel is Channel.EMAIL:
        messages = [Channel.EMAIL, Channel.SMS]

    fallback_reason: Reason | None = None
    if situation.last_outcome is CallOutcome.MACHINE:
        fallback_reason = Reason.MACHINE_ANSWERED
    elif situation.failed_call_attempts >= situation.max_call_attempts:
        fallback_reason = Reason.ATTEMPTS_EXHAUSTED
    if fallback_reason is not None:
        details = {"failed_call_attempts": str(situation.failed_call_attempts)}
        fallback = situation.fallback_channel
        if fallback is None or fallback in (Channel.NONE, Channel.CALL, Channel.WEB):
            return Decision(Channel.NONE, Reason.NO_FALLBACK, None, {"after": fallback_reason})
        return _first_reachable(facts, [fallback, *messages], fallback_reason, details)

    blocker = _call_blocker(facts, situation)
    if blocker is None:
        return Decision(Channel.CALL, Reason.CALL_ALLOWED, facts.callable_number)
    return _first_reachable(facts, messages, blocker, {})
