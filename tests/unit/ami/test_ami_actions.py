"""Action builders: the Originate carries the attempt id everywhere and is never re-sent."""

from __future__ import annotations

import pytest

from contactd.ami import actions


def test_originate_carries_attempt_id_as_action_channel_and_variable() -> None:
    fields = actions.originate(
        "a-1",
        "Local/300@world",
        context="contactd-outbound",
        timeout_ms=15000,
        caller_id='"Acme" <100>',
        variables={"CONTACTD_MODE": "agent"},
    )
    assert fields["ActionID"] == "a-1"
    assert fields["ChannelId"] == "a-1"
    assert fields["OtherChannelId"] == "a-1-2"
    assert fields["Async"] == "true"
    assert fields["Timeout"] == "15000"
    assert fields["Variable"] == ["CONTACTD_ATTEMPT=a-1", "CONTACTD_MODE=agent"]
    assert (fields["Context"], fields["Exten"], fields["Priority"]) == (
        "contactd-outbound",
        "s",
        "1",
    )
    assert "Application" not in fields


def test_originate_to_application_and_argument_check() -> None:
    fields = actions.originate("a", "Local/1@x", application="Playback", data="beep")
    assert (fields["Application"], fields["Data"]) == ("Playback", "beep")
    assert "Context" not in fields
    with pytest.raises(ValueError):
        actions.originate("a", "Local/1@x")
    with pytest.raises(ValueError):
        actions.originate("a", "Local/1@x", context="c", application="Playback")


def test_non_idempotent_actions_are_forgettable() -> None:
    for name in ("Originate", "Redirect", "Hangup", "QueueAdd", "QueueRemove", "QueuePause"):
        assert name.lower() in actions.FORGETTABLE_ACTIONS


def test_other_builders() -> None:
    assert actions.redirect("PJSIP/a-1", "q", "s", extra_channel="PJSIP/b-2") == {
        "Action": "Redirect",
        "Channel": "PJSIP/a-1",
        "Context": "q",
        "Exten": "s",
        "Priority": "1",
        "ExtraChannel": "PJSIP/b-2",
        "ExtraContext": "q",
        "ExtraExten": "s",
        "ExtraPriority": "1",
    }
    assert actions.hangup("X", 17)["Cause"] == "17"
    assert actions.setvar(None, "V", "1") == {"Action": "Setvar", "Variable": "V", "Value": "1"}
    added = actions.queue_add("sales", "PJSIP/7001", member_name="Ann", paused=True)
    assert (added["Paused"], added["MemberName"], added["Penalty"]) == ("true", "Ann", "0")
    assert actions.queue_pause("PJSIP/7001", False, queue="sales", reason="lunch") == {
        "Action": "QueuePause",
        "Interface": "PJSIP/7001",
        "Paused": "false",
        "Queue": "sales",
        "Reason": "lunch",
    }
    assert actions.queue_remove("sales", "PJSIP/7001")["Action"] == "QueueRemove"
    assert actions.command("core show uptime")["Command"] == "core show uptime"
