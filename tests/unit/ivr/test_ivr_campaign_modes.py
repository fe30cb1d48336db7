"""Automated campaigns that speak and listen: `--mode message --message-text` and `--mode
survey --flow`, checked at create, stored, and sent to the IVR by the dialplan variables."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from contactd.db.models.dialer import Campaign, Lead
from contactd.dialer.create import CampaignSpec, check_spec
from contactd.dialer.dialplan import originate_request
from contactd.enums import CampaignMode
from contactd.errors import ConfigError, ValidationError
from contactd.ivr.campaigns import fill_message, message_flow
from contactd.ivr.flows import Action, Collect, load_flow, shipped_flow


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (CampaignSpec("c", "message"), "--mode message needs --message-text"),
        (
            CampaignSpec("c", "message", message_text="Hi {phone}"),
            "names {phone}; allowed: {first_name}, {last_name}",
        ),
        (CampaignSpec("c", "message", message_text="Hi {first_name"), "write {{ for a brace"),
        (CampaignSpec("c", "message", message_text="x" * 2001), "at most 2000"),
        (CampaignSpec("c", "message", message_text="hi", ivr_flow="survey"), "a flow is for"),
        (CampaignSpec("c", "survey"), "--mode survey needs --flow"),
        (CampaignSpec("c", "survey", ivr_flow="nosuch"), "'nosuch' is not a shipped IVR flow"),
        (CampaignSpec("c", "automated", message="x", message_text="hi"), "for --mode message"),
    ],
)
def test_bad_message_and_survey_campaigns_are_refused_by_name(
    spec: CampaignSpec, needle: str
) -> None:
    with pytest.raises(ValidationError) as err:
        check_spec(spec)
    assert needle in str(err.value)


def test_message_and_survey_are_automated_campaigns_run_by_the_ivr() -> None:
    assert (
        check_spec(CampaignSpec("m", "message", message_text="Hello {first_name}, hi"))
        is CampaignMode.AUTOMATED
    )
    assert check_spec(CampaignSpec("s", "survey", ivr_flow="survey")) is CampaignMode.AUTOMATED
    lead = Lead(id=7, campaign_id=1, phone_e164="+4930123456", contact_id=3)
    spoken = Campaign(
        id=1,
        name="m",
        mode=CampaignMode.AUTOMATED,
        caller_id="",
        message="",
        message_text="Hello, {first_name}; your order is ready",
        ivr_flow=None,
    )
    variables = originate_request(spoken, lead, 30).variables
    # The text never travels as a channel variable (commas and semicolons are fine in it).
    assert variables["CONTACTD_MODE"] == "ivr" and variables["CONTACTD_MACHINE_IVR"] == "1"
    assert "CONTACTD_MESSAGE" not in variables
    survey = Campaign(
        id=2,
        name="s",
        mode=CampaignMode.AUTOMATED,
        caller_id="",
        message="",
        message_text="",
        ivr_flow="survey",
    )
    variables = originate_request(survey, lead, 30).variables
    assert variables["CONTACTD_MODE"] == "ivr" and "CONTACTD_MACHINE_IVR" not in variables


def test_a_message_is_filled_with_the_contacts_fields_and_spoken_then_hung_up() -> None:
    fields = {"first_name": "Mina", "last_name": "Kim", "name": "Mina Kim"}
    assert fill_message("Hello {name}, {x} stays", fields) == "Hello Mina Kim, {x} stays"
    assert fill_message("Hello {first_name}, bye", {"first_name": ""}) == "Hello , bye"
    flow = message_flow("spring", "Hello Mina", language="en", voice="")
    (step,) = flow.steps.values()
    assert (step.say, step.action) == ({"en": "Hello Mina"}, Action.HANGUP)


def test_the_survey_flow_keeps_going_after_a_no_and_names_contact_fields() -> None:
    flow = shipped_flow("survey")
    satisfied = flow.steps["satisfied"]
    assert (satisfied.collect, satisfied.no_next) == (Collect.YES_NO, "score")
    assert flow.steps["score"].contact_field == "survey_score"


def test_flow_keys_for_surveys_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text('[flow]\nname = "f"\n[steps.a]\nsay = "hi"\nno_next = "a"\n')
    with pytest.raises(ConfigError, match=r"f.toml:5: steps.a.no_next: is for collect"):
        load_flow(path)
    path.write_text(
        '[flow]\nname = "f"\n[steps.a]\nsay = "hi"\ncollect = "yes_no"\n'
        'field = "ok"\nno_next = "b"\n'
    )
    with pytest.raises(ConfigError, match="no_next: goes to 'b', which is not a step"):
        load_flow(path)


def test_cli_creates_message_and_survey_campaigns(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[3])
    conf = tmp_path / "contactd.toml"
    conf.write_text(
        f"[general]\ndata_dir = '{tmp_path / 'data'}'\ndefault_region = 'GB'\n"
        "[ami]\nenabled = false\n",
        encoding="utf-8",
    )
    leads = tmp_path / "leads.csv"
    leads.write_text("phone\n+442079460001\n", encoding="utf-8")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "contactd.cli",
                "campaign",
                "create",
                *args,
                "--from-file",
                str(leads),
                "--config",
                str(conf),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": root},
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    made = cli("spoken", "--mode", "message", "--message-text", "Hello {first_name}, hi")
    assert made.returncode == 0, made.stderr
    made = cli("poll", "--mode", "survey", "--flow", "survey")
    assert made.returncode == 0, made.stderr
    bad = cli("bad", "--mode", "message", "--message-text", "Hi {phone}")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "{phone}" in bad.stderr
    with sqlite3.connect(tmp_path / "data" / "contactd.db") as con:
        rows = con.execute(
            "SELECT name, mode, message_text, ivr_flow FROM campaigns ORDER BY id"
        ).fetchall()
    assert rows == [
        ("spoken", "automated", "Hello {first_name}, hi", None),
        ("poll", "automated", "", "survey"),
    ]


def test_a_confirmation_sms_goes_to_the_callee_on_a_campaign_call() -> None:
    import uuid

    from contactd.ivr.campaigns import CampaignCall, message_flow
    from contactd.ivr.service import CallerInfo, Session, sms_number

    flow = message_flow("spring", "Hello.", language="en", voice="")
    # On a campaign call Asterisk's caller ID is the company's own trunk number.
    caller = CallerInfo(channel="PJSIP/trunk-1", caller_num="+4930999000", attempt_id="a1")
    outbound = Session(uuid.uuid4(), caller, flow, campaign=CampaignCall(
        campaign_id=1, flow=flow, contact_id=5, contact_name="Mina", contact_language="en",
        phone_e164="+4915112345678"))
    inbound = Session(uuid.uuid4(), CallerInfo(caller_num="+4915100000001"), flow)
    assert sms_number(outbound) == "+4915112345678"
    assert sms_number(inbound) == "+4915100000001"
