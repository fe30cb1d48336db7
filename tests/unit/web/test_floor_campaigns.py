"""The floor's campaign row counts the ringing calls the predictive dialer ended unanswered
in the last hour (surplus hang-ups, contactd/dialer/surplus.py), beside the answer rate;
a campaign that never ends calls so shows none."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from contactd.config import DialerSettings
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard
from contactd.dialer.events import SurplusHangup
from contactd.dialer.runtime import Runtimes
from contactd.enums import CampaignMode
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.web.live import FloorHub

NOW = 1_800_000_000.0


def ended_at(seconds_ago: float, campaign_id: int) -> SurplusHangup:
    at = datetime.fromtimestamp(NOW - seconds_ago, UTC)
    return SurplusHangup(at=at, campaign_id=campaign_id, attempt_id=f"a{seconds_ago}",
                         ring_s=15.2)


def test_each_campaign_shows_its_own_surplus_hang_ups_of_the_last_hour(db: Database) -> None:
    runtimes = Runtimes(db, DialerSettings())
    for campaign_id, mode in ((1, CampaignMode.PREDICTIVE), (2, CampaignMode.PREDICTIVE),
                              (3, CampaignMode.PROGRESSIVE)):
        runtimes.for_campaign(Campaign(id=campaign_id, name=f"c{campaign_id}", mode=mode))
    dialer = SimpleNamespace(runtimes=runtimes, agents=AgentBoard())
    hub = FloorHub(db, EventBus(), HealthRegistry(), dialer,  # type: ignore[arg-type]
                   clock=lambda: NOW)
    for event in (ended_at(3700, 1), ended_at(1200, 1), ended_at(30, 2), ended_at(5, 1)):
        hub._on_surplus(event)
    figures = hub._campaign_figures(NOW)
    # The one of an hour and more ago has left the count; campaign 2's is its own.
    assert figures[1]["hung_up_1h"] == 2
    assert figures[2]["hung_up_1h"] == 1
    assert figures[3]["hung_up_1h"] is None  # a progressive campaign never hangs up early
