"""An agent's desk: join a campaign, Ready or Pause (with a reason), say what each call came
to, preview the next lead and dial or skip it, and click-to-call.

It drives the dialer's AgentBoard (the agent's name on the board is their user name, their
phone is the user's `extension`) and DialerService; each join, pause and ready is written to
the audit log so that reports can tell pause reasons apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import select

from contactd.auth.audit import Actor, record
from contactd.calls.service import OriginateRequest
from contactd.config import Settings
from contactd.crm.call_records import DONE as RECORDED_DONE
from contactd.crm.call_records import KEY as RECORDED
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import Interaction
from contactd.db.models.dialer import Campaign, DialRefusal, Lead
from contactd.db.models.users import User
from contactd.db.session import Database
from contactd.dialer import repo
from contactd.dialer.agents import Agent, AgentState
from contactd.dialer.announce import AgentCallOffered
from contactd.dialer.dispositions import Disposed, apply_disposition
from contactd.enums import CampaignMode, CampaignStatus
from contactd.errors import ConflictError, NotFoundError, ValidationError
from contactd.phones import parse_phone
from contactd.web.card import Card, card_of_lead
from contactd.web.live import LiveHub
from contactd.web.services import PanelServices

log = logging.getLogger(__name__)

PREVIEW_LOOKAHEAD: Final = 50  # due leads read to find one nobody else is previewing
TAB_CLOSED: Final = "tab_closed"  # pause reason of an agent whose workspace closed
PHONE_LOST: Final = "phone_lost"  # pause reason of an agent whose browser phone unregistered
TRANSFER_CONTEXT: Final = "contactd-transfer"  # asterisk-config/extensions.conf


@dataclass(frozen=True)
class Seat:
    """What the workspace shows about the agent right now."""

    agent: Agent
    campaign: Campaign | None  # None: signed in to inbound queues only
    pause_code: str | None
    wrap_left_s: float | None  # seconds until wrap-up ends by itself
    queues: tuple[str, ...] = ()  # inbound queues the agent takes callers from (blended)


class AgentDesk:
    def __init__(self, db: Database, settings: Settings, services: PanelServices,
                 hub: LiveHub, *, clock: Callable[[], float] = time.time) -> None:
        self._db, self._settings, self._services, self._hub = db, settings, services, hub
        self._clock = clock
        self._pause_codes: dict[str, str | None] = {}
        self._skipped: dict[str, set[int]] = {}
        self._previewing: dict[int, str] = {}  # lead -> agent who sees it now
        hub.on_away = self.tab_closed
        if services.webrtc is not None:
            services.webrtc.on_lost = self.phone_lost

    @property
    def wrap_s(self) -> float | None:
        """How long wrap-up lasts before it ends by itself (None: until the agent ends it)."""
        return self._services.dialer.agents.auto_ready_s if self._services.dialer else None

    @property
    def pause_codes(self) -> list[str]:
        return list(self._settings.dialer.pause_codes)

    def phone(self, user: User) -> str | None:
        """What Asterisk dials to reach the agent: their configured extension (a desk SIP
        phone), else their browser phone PJSIP/webrtc-<name> when browser phones are on."""
        if user.extension:
            return user.extension
        webrtc = self._services.webrtc
        return webrtc.dial_string(user.username) if webrtc is not None else None

    def _board_agent(self, user: User) -> Agent | None:
        board = self._services.need_dialer().agents
        board.tick(self._clock())  # a wrap-up past its time has ended
        return board.agents.get(user.username)

    async def seat(self, user: User) -> Seat | None:
        if self._services.dialer is None:
            return None
        agent = self._board_agent(user)
        if agent is None:
            return None
        campaign = None
        if agent.campaign_id is not None:
            async with self._db.session() as session:
                campaign = await session.get(Campaign, agent.campaign_id)
            if campaign is None:  # deleted meanwhile
                self._services.need_dialer().agents.logout(user.username)
                return None
        wrap = self._services.need_dialer().agents.auto_ready_s
        left = None
        if agent.state is AgentState.WRAPPING and wrap is not None:
            left = max(0.0, agent.since + wrap - self._clock())
        code = self._pause_codes.get(user.username)
        inbound = self._services.inbound
        if code is None and inbound is not None and agent.state is AgentState.PAUSED:
            code = inbound.paused_because.get(user.username)
        return Seat(agent, campaign, code, left, tuple(sorted(agent.queues)))

    def queues(self, user: User) -> list[str]:
        """Inbound queues this agent may sign in to, beside a campaign."""
        inbound = self._services.inbound
        return [] if inbound is None else inbound.queues_for(user.username, user.team)

    async def campaigns(self, user: User) -> list[Campaign]:
        """Campaigns `user` can join: every one that needs agents, is not over, and takes
        any agent or the user's team."""
        async with self._db.session() as session:
            found = await session.scalars(
                select(Campaign).where(
                    Campaign.mode != CampaignMode.AUTOMATED,
                    Campaign.status.in_((CampaignStatus.RUNNING, CampaignStatus.PAUSED,
                                         CampaignStatus.DRAFT)),
                ).order_by(Campaign.name))
            return [c for c in found if _takes(c, user)]

    async def join(self, user: User, campaign_id: int | None, actor: Actor,
                   queues: list[str] | None = None) -> Agent:
        """Signs the agent in to the campaign and inbound queues (both: blended; either
        alone too), paused until they say Ready."""
        dialer = self._services.need_dialer()
        phone = self.phone(user)
        if not phone:
            raise ValidationError(
                "your account has no phone (extension); an admin sets it on the Users page",
                field="extension")
        joined: frozenset[str] = frozenset()
        if queues:
            if self._services.inbound is None:
                raise NotFoundError("no inbound queues are running", code="queue_not_found")
            joined = self._services.inbound.check_join(user.username, user.team, queues)
        if campaign_id is None and not joined:
            raise ValidationError("choose a campaign or an inbound queue", field="campaign_id")
        async with self._db.transaction() as session:
            if campaign_id is not None:
                campaign = await session.get(Campaign, campaign_id)
                if campaign is None or campaign.mode is CampaignMode.AUTOMATED:
                    raise NotFoundError(f"no campaign {campaign_id} that takes agents",
                                        code="campaign_not_found")
                if not _takes(campaign, user):
                    raise ValidationError(
                        f"campaign {campaign.name!r} takes agents of team {campaign.team!r}; "
                        f"you are in {'no team' if not user.team else repr(user.team)}",
                        field="campaign_id")
            record(session, actor, "agent.join", "campaign", campaign_id, None,
                   {"agent": user.username, "queues": sorted(joined)})
        now = self._clock()
        agent = dialer.agents.login(user.username, phone, campaign_id, now,
                                    queues=joined)
        dialer.agents.pause(user.username, now)
        self._pause_codes[user.username] = None
        return agent

    async def leave(self, user: User, actor: Actor) -> None:
        dialer = self._services.need_dialer()
        agent = self._board_agent(user)
        if agent is None:
            return
        if agent.state is AgentState.TALKING:
            raise ConflictError("finish the call before leaving the campaign",
                                code="agent_on_call")
        dialer.agents.logout(user.username)
        self._pause_codes.pop(user.username, None)
        self._release_previews(user.username)
        self._hub.forget(user.username)
        async with self._db.transaction() as session:
            record(session, actor, "agent.leave", "campaign", agent.campaign_id, None,
                   {"agent": user.username})

    async def ready(self, user: User, actor: Actor) -> None:
        """Ends a pause or the wrap-up: the dialer may give the agent the next call."""
        dialer = self._services.need_dialer()
        agent = self._seated(user)
        before = agent.state.value
        dialer.agents.ready(user.username, self._clock())
        code = self._pause_codes.pop(user.username, None)
        last = self._hub.last.get(user.username)
        if last is not None and last["card"].get("queue") and last.get("ended"):
            self._hub.forget(user.username)  # an inbound call has no disposition to wait for
        if self._services.inbound is not None:
            code = code or self._services.inbound.paused_because.pop(user.username, None)
            self._services.inbound.wake()  # inbound callers first, then the dialer
        async with self._db.transaction() as session:
            record(session, actor, "agent.ready", "campaign", agent.campaign_id,
                   {"state": before, "pause_code": code}, {"state": "free"})
        dialer.wake()

    async def pause(self, user: User, code: str, actor: Actor) -> None:
        if code not in self._settings.dialer.pause_codes:
            raise ValidationError(
                f"pause reason {code!r} is not one of {', '.join(self.pause_codes)}",
                field="pause_code")
        dialer = self._services.need_dialer()
        agent = self._seated(user)
        before = agent.state.value
        dialer.agents.pause(user.username, self._clock(), code)  # or a new reason
        self._pause_codes[user.username] = code
        async with self._db.transaction() as session:
            record(session, actor, "agent.pause", "campaign", agent.campaign_id,
                   {"state": before}, {"state": "paused", "pause_code": code})

    async def tab_closed(self, username: str, reason: str = TAB_CLOSED) -> None:
        """The agent's last workspace tab closed and stayed closed: a Ready (or wrapping)
        agent is paused, so no call rings a desk nobody watches; the page says why."""
        if self._services.dialer is None:
            return
        board = self._services.dialer.agents
        board.tick(self._clock())
        agent = board.agents.get(username)
        if agent is None or agent.state not in (AgentState.FREE, AgentState.WRAPPING):
            return
        before = agent.state.value
        board.pause(username, self._clock(), reason)
        self._pause_codes[username] = reason
        async with self._db.transaction() as session:
            user_id = await session.scalar(select(User.id).where(User.username == username))
            record(session, Actor(user_id=user_id), "agent.pause", "campaign",
                   agent.campaign_id, {"state": before},
                   {"state": "paused", "pause_code": reason})

    async def phone_lost(self, username: str) -> None:
        """The agent's browser phone lost its registration (closed laptop, network gone):
        paused like a closed tab, so the pacer stops counting them; the page says why."""
        await self.tab_closed(username, PHONE_LOST)

    # ---- transfer ---------------------------------------------------------------------------
    def transfer_targets(self, user: User) -> list[tuple[str, str]]:
        """Where this agent can pass a call on: agents Ready now on a campaign, and the
        inbound queues (value, label)."""
        if self._services.dialer is None:
            return []
        board = self._services.dialer.agents
        board.tick(self._clock())
        agents = sorted(a.name for a in board.agents.values()
                        if a.name != user.username and a.state is AgentState.FREE
                        and a.campaign_id is not None)
        inbound = self._services.inbound
        queues = [] if inbound is None else sorted(inbound.settings.queues)
        return [(f"agent:{n}", n) for n in agents] + [(f"queue:{q}", q) for q in queues]

    async def transfer(self, user: User, target: str, actor: Actor) -> str:
        """Blind transfer of the agent's campaign call to another agent who is Ready, or to an
        inbound queue: the caller's channel is redirected (contactd-transfer), this agent's
        leg hangs up and goes to wrap-up, the other agent's card pops. Returns the target."""
        agent = self._seated(user)
        attempt_id = agent.attempt_id
        if agent.state is not AgentState.TALKING or attempt_id is None or agent.inbound:
            raise ConflictError("there is no campaign call of yours to transfer",
                                code="no_call_to_transfer")
        kind, _, name = target.partition(":")
        if (kind, name) not in {tuple(v.split(":", 1)) for v, _ in self.transfer_targets(user)}:
            raise ConflictError(f"{name or target!r} cannot take the call now (an agent must "
                                "be Ready; a queue must be one of the inbound queues)",
                                code="transfer_target_unavailable")
        calls = self._services.need_calls()
        channel = calls.channel_of(attempt_id)
        if channel is None:
            raise NotFoundError("the call has already ended", code="call_gone")
        board = self._services.need_dialer().agents
        other = board.agents.get(name) if kind == "agent" else None
        if other is not None:
            await calls.ami.setvar(channel, "CONTACTD_AGENT", other.dial)
        else:
            await calls.ami.setvar(channel, "CONTACTD_QUEUE", name)
        await calls.ami.redirect(channel, TRANSFER_CONTEXT, kind)
        now = self._clock()
        board.call_ended(attempt_id, now)  # this agent's part is over: wrap-up
        self._hub.disposed(user.username, attempt_id)  # the card goes with the call
        if other is not None and other.campaign_id is not None:
            board.claim(other.campaign_id, attempt_id, now, only=name)
            bus = self._services.bus
            if bus is not None:  # the other agent's card pops, and they say what it came to
                await bus.publish(AgentCallOffered(attempt_id=attempt_id, agent=name,
                                                   campaign_id=other.campaign_id))
        async with self._db.transaction() as session:
            record(session, actor, "call.transfer", "call_attempt", attempt_id,
                   {"agent": user.username}, {kind: name})
        log.info("call transferred", extra={"attempt_id": attempt_id, "agent": user.username,
                                             "target": target})
        return name

    def _seated(self, user: User) -> Agent:
        agent = self._board_agent(user)
        if agent is None:
            raise ConflictError("join a campaign first", code="agent_not_joined")
        return agent

    async def dispose(self, user: User, attempt_id: str, disposition: str,
                      callback_at: datetime | None) -> Disposed:
        """The agent says what the call came to; only a call this agent was given."""
        if self._hub.offered_to(attempt_id) != user.username:
            raise NotFoundError(f"call {attempt_id} was not given to you",
                                code="attempt_not_found")
        done = await apply_disposition(
            self._db, self._settings.dialer, attempt_id, disposition, user_id=user.id,
            now=datetime.fromtimestamp(self._clock(), UTC), callback_at=callback_at)
        self._hub.disposed(user.username, attempt_id)
        return done

    async def store_quality(self, user: User, attempt_id: str, figures: dict[str, float]) -> bool:
        """The browser phone's getStats figures at hang-up, kept in the call's interaction
        (`data["call_quality"]`); False while the call is not recorded yet (the page retries).
        Not before the call recorder has finished the interaction: it rewrites `data` from
        what it read, so figures written in between would be lost."""
        if self._hub.offered_to(attempt_id) != user.username:
            raise NotFoundError(f"call {attempt_id} was not given to you",
                                code="attempt_not_found")
        async with self._db.transaction() as session:
            attempt = await session.get(CallAttempt, attempt_id)
            if attempt is None or attempt.interaction_id is None:
                return False
            interaction = await session.get(Interaction, attempt.interaction_id)
            if interaction is None or interaction.data.get(RECORDED) != RECORDED_DONE:
                return False
            interaction.data = {**interaction.data, "call_quality": figures}
        return True

    # ---- preview mode ---------------------------------------------------------------------
    def _release_previews(self, agent: str) -> None:
        for lead_id in [k for k, v in self._previewing.items() if v == agent]:
            del self._previewing[lead_id]

    async def preview(self, user: User) -> Card | None:
        """The next due lead of the agent's preview campaign that nobody else is looking at."""
        agent = self._seated(user)
        now = datetime.fromtimestamp(self._clock(), UTC)
        skipped = self._skipped.setdefault(user.username, set())
        async with self._db.session() as session:
            campaign = await session.get(Campaign, agent.campaign_id)
            if campaign is None or campaign.mode is not CampaignMode.PREVIEW:
                return None
            leads = await repo.due_leads(session, campaign.id, now, PREVIEW_LOOKAHEAD)
        self._release_previews(user.username)
        for lead in leads:
            if lead.id in skipped or self._previewing.get(lead.id, user.username) != user.username:
                continue
            self._previewing[lead.id] = user.username
            return await card_of_lead(self._db, self._settings.dialer, lead.id)
        return None

    def skip(self, user: User, lead_id: int) -> None:
        """Not this one, for now: the lead stays as it is for the dialer and other agents."""
        self._seated(user)
        self._skipped.setdefault(user.username, set()).add(lead_id)
        self._previewing.pop(lead_id, None)

    async def dial_preview(self, user: User, lead_id: int) -> None:
        agent = self._seated(user)
        if agent.state is not AgentState.FREE:
            raise ConflictError("say Ready first: the answered call comes to a ready agent",
                                code="agent_not_ready")
        async with self._db.session() as session:
            lead = await session.get(Lead, lead_id)
        if lead is None or lead.campaign_id != agent.campaign_id:
            raise NotFoundError(f"no lead {lead_id} in your campaign", code="lead_not_found")
        if not await self._services.need_dialer().dial_lead(lead_id, agent=user.username):
            raise ConflictError(await self._why_not(lead_id), code="lead_not_dialled")
        self._previewing.pop(lead_id, None)

    async def _why_not(self, lead_id: int) -> str:
        async with self._db.session() as session:
            detail = await session.scalar(
                select(DialRefusal.detail).where(DialRefusal.lead_id == lead_id)
                .order_by(DialRefusal.id.desc()).limit(1))
        return f"not dialled: {detail}" if detail else "not dialled: the lead is not due now"

    # ---- click-to-call --------------------------------------------------------------------
    async def click_to_call(self, user: User, raw_number: str, contact_id: int | None) -> str:
        """Rings the agent's phone first; when they answer, Asterisk dials the number."""
        calls = self._services.need_calls()
        phone = self.phone(user)
        if not phone:
            raise ValidationError("your account has no phone (extension) to ring first",
                                  field="extension")
        e164 = parse_phone(raw_number, self._settings.general.default_region).e164
        async with self._db.session() as session:
            on_global, _ = await repo.dnc_flags(session, e164, None)
        if on_global:
            raise ConflictError(f"{e164} is on the do-not-call list", code="dnc_global")
        return await calls.originate(OriginateRequest(
            phone_e164=e164, dial=phone, context=self._settings.asterisk.agent_context,
            exten=e164, detect_machine=False, contact_id=contact_id, agent_id=user.id,
            ring_timeout_s=float(self._settings.dialer.ring_timeout_s)))


def _takes(campaign: Campaign, user: User) -> bool:
    """A campaign with a team takes only that team's agents; one without takes anyone."""
    return not campaign.team or campaign.team == user.team
