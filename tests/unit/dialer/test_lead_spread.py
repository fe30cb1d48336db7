"""Daemons sharing a campaign spread their reach over the due leads (dial_loop.spread):
callbacks still come before fresh leads and fresh before recycled, higher priority first,
but two daemons no longer walk the same leads in the same order."""

from __future__ import annotations

from contactd.db.models.dialer import Lead
from contactd.dialer.dial_loop import spread
from contactd.enums import LeadStatus


def lead(lead_id: int, status: LeadStatus, priority: int = 0) -> Lead:
    return Lead(id=lead_id, campaign_id=1, phone_e164=f"+4930{lead_id:07d}", status=status,
                priority=priority)


def test_rank_and_priority_hold_and_the_order_within_them_differs() -> None:
    fresh = [lead(i, LeadStatus.NEW) for i in range(40)]
    urgent = [lead(100 + i, LeadStatus.NEW, priority=5) for i in range(3)]
    callbacks = [lead(200 + i, LeadStatus.CALLBACK) for i in range(2)]
    recycled = [lead(300 + i, LeadStatus.RETRY) for i in range(3)]
    due = callbacks + urgent + fresh + recycled  # as the SQL orders them
    one, two = spread(list(due)), spread(list(due))
    for order in (one, two):
        assert {x.id for x in order[:2]} == {x.id for x in callbacks}
        assert {x.id for x in order[2:5]} == {x.id for x in urgent}
        assert {x.id for x in order[5:45]} == {x.id for x in fresh}
        assert {x.id for x in order[45:]} == {x.id for x in recycled}
    # 40 equal leads: the chance that two spreads agree on the first three is 1 in 59,280.
    assert [x.id for x in one[5:8]] != [x.id for x in two[5:8]]
