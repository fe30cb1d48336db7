"""The abandon accountant: each live answer counted once for the governor, abandons amended.

A person who answered is counted once (a LiveAnswer row and the pacer's governor, through
the campaign's `AnswerLedger`): connected when handed to an agent or a queue in time,
abandoned otherwise. A call counted connected turns abandoned, never counted twice, when
Asterisk gives up connecting it (CallAbandoned: queue timeout, agent phone not answering) or
when it ends without having reached anyone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from contactd.calls.events import CallAbandoned
from contactd.db.session import Database
from contactd.dialer import answers
from contactd.dialer.agents import AgentBoard
from contactd.dialer.callstate import DialEvent, DialState
from contactd.dialer.runtime import CampaignRuntime, Runtimes

log = logging.getLogger(__name__)

ELSEWHERE_KEEP: Final = 10_000


class AbandonAccountant:
    def __init__(
        self,
        db: Database,
        runtimes: Runtimes,
        agents: AgentBoard,
        *,
        seeding: asyncio.Lock,
        clock: Callable[[], float],
        wake: Callable[[], None],
    ) -> None:
        self.db, self.runtimes, self.agents = db, runtimes, agents
        self._seeding = seeding  # the dial loop seeds governors under it
        self.clock = clock
        self._wake = wake
        # Attempts of an earlier process that Asterisk abandoned: their lead ends ABANDONED.
        self._elsewhere: OrderedDict[str, float] = OrderedDict()

    async def count(
        self, rt: CampaignRuntime, attempt_id: str, *, abandoned: bool, wait_s: float
    ) -> None:
        """Count a live answer once; one counted connected may later turn abandoned."""
        await rt.ledger.count(attempt_id, at=self.clock(), abandoned=abandoned, wait_s=wait_s)

    async def abandon(self, rt: CampaignRuntime, attempt_id: str, now_s: float) -> None:
        """The dialer's own verdict: a person waiting or connecting is an abandon."""
        call = rt.calls.get(attempt_id)
        if call is None:
            return
        before, since = call.state, call.since
        if rt.calls.move(attempt_id, DialEvent.ABANDON, now_s) is None:
            return
        if before is not DialState.ABANDONED:
            wait_s = now_s - since if before is DialState.WAITING else 0.0
            await self.count(rt, attempt_id, abandoned=True, wait_s=wait_s)

    async def on_abandoned(self, event: CallAbandoned) -> None:
        """Asterisk gave up connecting the person (queue timeout, agent phone not answering):
        an abandon, whatever the dialer had counted; its lead ends ABANDONED."""
        now_s = self.clock()
        attempt_id = event.attempt_id
        rt = self.runtimes.of_attempt(attempt_id)
        if rt is not None:
            await self.abandon(rt, attempt_id, now_s)
        else:
            # Dialed before a restart. Under the seeding lock: a governor is seeded from the
            # rows either before (then amended here) or after this change (reads the new row).
            async with self._seeding:
                mine = await answers.amend_stored(self.db, attempt_id, now_s,
                                                  self.runtimes.seeded_pacer,
                                                  self.runtimes.node)
            if mine:
                self._elsewhere[attempt_id] = now_s
                while len(self._elsewhere) > ELSEWHERE_KEEP:
                    self._elsewhere.popitem(last=False)
        # The person hears the identification message: the agent claimed for them is free.
        # Their phone only rang: no talk sample for the pacer (it would shorten its estimate).
        self.agents.call_ended(attempt_id, now_s, talked=False)
        self._wake()

    async def call_ended(self, rt: CampaignRuntime, attempt_id: str, now_s: float) -> bool:
        """A call this process dialed ended: it leaves the table. True when it is an abandon
        (the lead then ends ABANDONED)."""
        call = rt.calls.get(attempt_id)
        if call is None:
            return False
        if call.state is DialState.RINGING and call.hung_up_at is not None:
            # Hung up by the dialer: it might still have answered (censored, not a failure).
            rt.pacer.call_cancelled(call.hung_up_at - call.dialed_at)
        elif call.state is DialState.RINGING:  # never answered: a failure the pacer learns from
            rt.pacer.call_resolved(now_s - call.dialed_at, needs_agent=False)
        # Hung up while waiting for an agent: still an abandon. Or counted connected, yet it
        # never reached anyone: the queue or the agent gave up and the person hung up before
        # ContactdAbandon (during the identification message), or while the queue or the
        # agent's phone still rang. An abandon too.
        counted = rt.ledger.get(attempt_id)
        now_abandoned = call.state is DialState.WAITING or (
            call.state is DialState.CONNECTING and counted is not None
            and not counted.abandoned)
        if now_abandoned:
            rt.calls.move(attempt_id, DialEvent.ABANDON, now_s)
        # Out of the table before any await: a hand-off running meanwhile sees it ended.
        rt.calls.end(attempt_id)
        if now_abandoned:
            await self.count(rt, attempt_id, abandoned=True, wait_s=0.0)
        return call.state is DialState.ABANDONED

    def abandoned_elsewhere(self, attempt_id: str) -> bool:
        """True (once) when Asterisk abandoned this attempt of an earlier process."""
        return self._elsewhere.pop(attempt_id, None) is not None
