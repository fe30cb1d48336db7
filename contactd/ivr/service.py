"""The IVR service: runs a flow with each AudioSocket call and routes what it learns into the CRM.

It decides; the adapters translate (audiosocket, asr, tts). Every call gets its interaction row
at the first frame, updates as answers arrive, and a finish on every path, hang-up included
(DESIGN §3). An outbound automated campaign's call (its attempt id in UserEvent ContactdIvr)
runs that campaign's flow instead of the inbound one: its survey, or its message spoken;
answers go on the interaction and, where a step names a contact field, on the contact.
A transfer leaves through the dialplan: the channel gets CONTACTD_ROUTE=queue and
CONTACTD_QUEUE by AMI Setvar, then the socket closes and `contactd-route` queues the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from contactd.background import TaskOwner
from contactd.config import InboundSettings
from contactd.crm.routing import FollowUp, InboundContact, Router
from contactd.db.base import utcnow
from contactd.dialer.inbound import route_of
from contactd.enums import Channel, Direction, InteractionKind
from contactd.errors import ContactdError
from contactd.ivr.asr import Heard, SpeechModel, TranscriptionStoppedError
from contactd.ivr.audiosocket import AudioSocketCall
from contactd.ivr.campaigns import CampaignCall, CampaignFlows
from contactd.ivr.confirm import Outbox, fill, send_confirmation
from contactd.ivr.events import IvrSessionEnded, IvrSessionStarted, SpeechDecided
from contactd.ivr.flows import Action, Collect, Flow, Step
from contactd.ivr.tts import Tts
from contactd.ivr.turn import Answer, Outcome, TurnSettings, ask
from contactd.ivr.when import SPOKEN, callback_time

log = logging.getLogger(__name__)

CALLER_WAIT_S = 0.5  # the ContactdIvr UserEvent precedes the AudioSocket connect
MAX_RETRIES = 3
CALLBACK_DELAY = timedelta(hours=1)
TIME_GUESS = 0.7  # share of min_confidence a spoken time needs: it is confirmed anyway


class SessionState(enum.StrEnum):
    CONNECTED = "connected"
    IN_FLOW = "in_flow"
    TRANSFERRED = "transferred"
    COMPLETED = "completed"
    ABANDONED = "abandoned"  # the caller hung up mid-way
    FAILED = "failed"


_TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.CONNECTED: frozenset(
        {SessionState.IN_FLOW, SessionState.ABANDONED, SessionState.FAILED}
    ),
    SessionState.IN_FLOW: frozenset(
        {
            SessionState.TRANSFERRED,
            SessionState.COMPLETED,
            SessionState.ABANDONED,
            SessionState.FAILED,
        }
    ),
}


class ChannelControl(Protocol):
    """What the IVR needs from AMI (AmiClient satisfies it)."""

    async def setvar(self, channel: str | None, name: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CallerInfo:
    channel: str = ""
    caller_num: str = ""
    attempt_id: str = ""
    amd: str = ""  # outbound: the AMD verdict (MACHINE: a voicemail hears the message)


def sms_number(session: Session) -> str:
    """Where a confirmation SMS goes: the caller's number on an inbound call; on a campaign
    call the number dialled (the caller ID Asterisk shows there is the company's own)."""
    if session.campaign is not None and session.campaign.phone_e164:
        return session.campaign.phone_e164
    return session.caller.caller_num


@dataclass
class Session:
    session_id: uuid.UUID
    caller: CallerInfo
    flow: Flow
    campaign: CampaignCall | None = None
    interaction_id: int = 0
    contact_id: int | None = None
    contact_name: str = ""
    language: str = ""
    language_known: bool = False  # from the contact: a language menu is skipped
    state: SessionState = SessionState.CONNECTED
    answers: dict[str, Any] = field(default_factory=dict)
    follow_up: FollowUp = field(default_factory=FollowUp)
    said: list[str] = field(default_factory=list)  # every prompt text, in order

    def move(self, to: SessionState) -> None:
        if to not in _TRANSITIONS.get(self.state, frozenset()):
            raise ValueError(f"IVR session cannot go from {self.state} to {to}")
        self.state = to


class IvrService:
    """Prompts pre-built at start; `handle` is the AudioSocket server's call handler."""

    def __init__(
        self,
        flow: Flow,
        router: Router,
        tts: Tts,
        *,
        speech: SpeechModel | None = None,
        channels: ChannelControl | None = None,
        turn: TurnSettings | None = None,
        min_confidence: float = 0.7,
        campaigns: CampaignFlows | None = None,
        outbox: Outbox | None = None,
        timezone: str = "UTC",
        inbound: InboundSettings | None = None,
    ) -> None:
        self.flow = flow
        self.inbound = inbound or InboundSettings()  # contactd's own queues (dialer/inbound)
        self.campaigns = campaigns
        self.outbox = outbox
        self.timezone = timezone  # keyed callback times are read in the site's zone
        self.router = router
        self.bus = router.bus  # session and speech-decision events, for metrics
        self.tts = tts
        self.speech = speech
        self.channels = channels
        self.turn = turn or TurnSettings()
        self.min_confidence = min_confidence
        self._callers: dict[str, CallerInfo] = {}
        self._caller_seen: dict[str, asyncio.Event] = {}
        self._tasks = TaskOwner("ivr", log)
        self.prompts_ready: asyncio.Task[None] | None = None
        self.finished: dict[uuid.UUID, Session] = {}  # last few sessions, for probes and tests

    async def __aenter__(self) -> IvrService:
        for language in self.flow.languages:
            self.tts.check_voice(self._voice(self.flow, language))  # a missing voice fails
        # Built in the background so the daemon is up at once; a call that needs a prompt
        # not yet made waits for that one prompt (Tts makes each once, under a lock).
        self.prompts_ready = self._tasks.spawn(self._prebuild(), name="prebuild prompts")
        return self

    async def _prebuild(self) -> None:
        for language, text in self.flow.prompts():
            await self.tts.speak(text, voice=self._voice(self.flow, language), language=language)
        log.info("ivr prompts ready", extra={"flow": self.flow.name})

    async def __aexit__(self, *exc_info: object) -> None:
        await self._tasks.close()

    @staticmethod
    def _voice(flow: Flow, language: str) -> str:
        return flow.voices.get(language, language)

    def on_user_event(self, event: Any) -> None:
        """AMI UserEvent ContactdIvr: which channel and caller an AudioSocket session is."""
        if event.get("UserEvent") != "ContactdIvr":
            return
        session = str(event.get("Session", "")).lower()
        if not session:
            return
        self._callers[session] = CallerInfo(
            channel=str(event.get("Channel", "")),
            caller_num=str(event.get("CallerNum", "")),
            attempt_id=str(event.get("Attempt", "")),
            amd=str(event.get("Amd", "")),
        )
        self._caller_seen.setdefault(session, asyncio.Event()).set()

    async def _caller(self, session_id: uuid.UUID) -> CallerInfo:
        key = str(session_id)
        seen = self._caller_seen.setdefault(key, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.wait(), CALLER_WAIT_S if self.channels else 0.0)
        self._caller_seen.pop(key, None)
        return self._callers.pop(key, CallerInfo())

    async def handle(self, call: AudioSocketCall) -> None:
        caller = await self._caller(call.session_id)
        campaign = None
        if caller.attempt_id and self.campaigns is not None:
            campaign = await self.campaigns.for_attempt(caller.attempt_id)
        flow = campaign.flow if campaign is not None else self.flow
        session = Session(call.session_id, caller, flow, campaign)
        if self.bus is not None:
            await self.bus.publish(IvrSessionStarted(session_id=str(call.session_id)))
        try:
            await self._start(session)
            session.move(SessionState.IN_FLOW)
            await self._run(call, session)
        except asyncio.CancelledError:
            if session.state in _TRANSITIONS:
                session.move(SessionState.ABANDONED)
            raise
        except Exception:
            if session.state in _TRANSITIONS:
                session.move(SessionState.FAILED)
            raise
        finally:
            # Shielded: a server stopping mid-call still closes the record.
            await asyncio.shield(self._finish(session))

    async def _start(self, session: Session) -> None:
        flow, campaign = session.flow, session.campaign
        contact_id: int | None = None
        contact_language = ""
        if campaign is not None:  # outbound: the callee is the campaign's contact
            contact_id = campaign.contact_id
            session.contact_name = campaign.contact_name
            contact_language = campaign.contact_language
        elif session.caller.caller_num:
            contact = await self.router.contacts.lookup_phone(session.caller.caller_num)
            if contact is not None:
                contact_id = contact.contact_id
                session.contact_name = contact.display_name
                contact_language = contact.language
        if contact_language in flow.languages:
            session.language = contact_language
            session.language_known = True
        session.language = session.language or flow.languages[0]
        data: dict[str, Any] = {
            "session": str(session.session_id),
            "flow": flow.name,
            "language": session.language,
        }
        if campaign is not None:
            data |= {"attempt": session.caller.attempt_id, "amd": session.caller.amd}
        routed = await self.router.start(
            InboundContact(
                kind=InteractionKind.IVR_SESSION,
                direction=Direction.INBOUND if campaign is None else Direction.OUTBOUND,
                channel=Channel.CALL,
                remote_address=session.caller.caller_num if campaign is None else "",
                contact_id=contact_id,
                campaign_id=campaign.campaign_id if campaign is not None else None,
                subject=f"IVR {flow.name}",
                data=data,
            )
        )
        session.interaction_id = routed.interaction_id
        session.contact_id = routed.contact_id
        log.info(
            "ivr session started",
            extra={"interaction_id": routed.interaction_id, "contact_id": routed.contact_id},
        )

    async def _finish(self, session: Session) -> None:
        if not session.interaction_id:  # the record could not even start
            if self.bus is not None:
                await self.bus.publish(
                    IvrSessionEnded(session_id=str(session.session_id), outcome="failed")
                )
            return
        outcome = {SessionState.ABANDONED: "abandoned", SessionState.FAILED: "failed"}.get(
            session.state, session.follow_up.outcome or session.state.value
        )
        end = FollowUp(
            outcome=outcome,
            ended_at=utcnow(),
            callback_at=session.follow_up.callback_at,
            wants_agent=session.follow_up.wants_agent,
            team=session.follow_up.team,
        )
        await self.router.finish(session.interaction_id, end)
        self.finished[session.session_id] = session
        while len(self.finished) > 100:
            self.finished.pop(next(iter(self.finished)))
        log.info(
            "ivr session finished",
            extra={"interaction_id": session.interaction_id, "outcome": outcome},
        )
        if self.bus is not None:
            await self.bus.publish(
                IvrSessionEnded(
                    session_id=str(session.session_id),
                    outcome=outcome,
                    interaction_id=session.interaction_id,
                )
            )

    async def _say(self, step: Step, session: Session) -> bytes:
        if step.languages:  # a language menu speaks each of its languages in its own voice
            return b"".join(
                [await self._speak(step, session, language) for language in step.languages.values()]
            )
        return await self._speak(step, session, session.language)

    async def _speak(self, step: Step, session: Session, language: str) -> bytes:
        # A language the step has no text for hears the default language's text and voice.
        if language not in step.say:
            language = session.flow.languages[0]
        text = step.say.get(language, "")
        if session.contact_name and language in step.say_known:
            text = step.say_known[language].format(name=session.contact_name)
        elif "{" in text:  # a campaign's callee is greeted by name too
            text = text.replace("{name}", session.contact_name).strip()
        if not text:
            return b""
        session.said.append(text)
        return await self.tts.speak(
            text, voice=self._voice(session.flow, language), language=language
        )

    async def _run(self, call: AudioSocketCall, session: Session) -> None:
        name = session.flow.start
        while name:
            step = session.flow.steps[name]
            if step.languages and session.language_known:
                name = step.next  # the contact's language is on record: no need to ask
                continue
            prompt = await self._say(step, session)
            if step.action is not None:
                await call.play(prompt)
                await self._act(call, step, session)
                return
            if (
                step.choices
                or step.languages
                or step.collect in (Collect.YES_NO, Collect.DIGITS, Collect.FREE, Collect.TIME)
            ):
                result = await self._ask(call, step, session, prompt)
                if result is None:  # hung up, "no", or no usable answer after the retries
                    await self._end_early(call, session)
                    return
                name = result
            else:
                await call.play(prompt)
                if call.ended.is_set():
                    session.move(SessionState.ABANDONED)
                    return
                name = step.next
        session.move(SessionState.COMPLETED)

    async def _ask(
        self, call: AudioSocketCall, step: Step, session: Session, prompt: bytes
    ) -> str | None:
        """One answered step: the next step's name, or None when the call should end."""
        keys = self._keys(step, session)
        settings = dataclasses.replace(self.turn, max_digits=step.max_digits)
        if step.collect is Collect.TIME:
            at = await self._ask_time(call, step, session, prompt, settings)
            if at is None:
                if session.state is SessionState.IN_FLOW:
                    session.follow_up = FollowUp(outcome="no_input")
                return None
            session.answers[step.field] = at
            await self.router.update(session.interaction_id, data={"answers": session.answers})
            if step.contact_field:
                await self._store_on_contact(session, step.contact_field, at)
            return step.next
        for _ in range(MAX_RETRIES):
            recognizer = None
            if self.speech is not None and keys and any(keys.values()):
                words = sorted({w for ws in keys.values() for w in ws})
                recognizer = self.speech.recognizer(words)
            answer = await ask(
                call, prompt, settings, recognizer=recognizer, record=step.collect is Collect.FREE
            )
            await self._observe(session, answer)
            if answer.heard is not None:
                log.info(
                    "ivr heard",
                    extra={
                        "interaction_id": session.interaction_id,
                        "step": step.name,
                        "heard": answer.heard.text,
                        "confidence": answer.heard.confidence,
                    },
                )
            if answer.outcome is Outcome.HANGUP:
                session.move(SessionState.ABANDONED)
                return None
            value = self._value(step, answer, keys)
            if value is None:
                continue  # not understood or silence: say it again
            if step.collect is not None:
                session.answers[step.field] = value
                await self.router.update(session.interaction_id, data={"answers": session.answers})
                if step.contact_field:
                    await self._store_on_contact(session, step.contact_field, value)
                if step.collect is Collect.FREE:
                    self._tasks.spawn(
                        self._transcribe(session, step.field, answer.audio),
                        name=f"transcribe {session.interaction_id}",
                    )
                if step.collect is Collect.YES_NO and value is False:
                    return step.no_next or None  # by default a "no" ends the flow politely
                return step.next
            if step.languages:
                session.language = step.languages[value]
                await self.router.update(
                    session.interaction_id, data={"language": session.language}
                )
                return step.next
            return next(c.next for c in step.choices if c.key == value)
        session.follow_up = FollowUp(outcome="no_input")
        return None

    async def _end_early(self, call: AudioSocketCall, session: Session) -> None:
        if session.state is not SessionState.IN_FLOW:
            return
        if call.ended.is_set():
            session.move(SessionState.ABANDONED)
            return
        if session.follow_up.outcome != "no_input":
            await self._route(session, "hangup")
            await call.hangup()
        # No input: closing the socket leaves CONTACTD_ROUTE empty, so the dialplan's
        # fallback queue takes the caller, who is never lost.
        session.move(SessionState.COMPLETED)

    async def _store_on_contact(self, session: Session, key: str, value: Any) -> None:
        """The answer in the contact's custom field; it stays on the interaction regardless."""
        if session.contact_id is None:
            return
        try:
            await self.router.contacts.update_contact(session.contact_id, custom={key: value})
        except ContactdError as exc:  # e.g. the field is not defined: say so, keep going
            log.warning(
                "ivr answer not stored on the contact",
                extra={
                    "interaction_id": session.interaction_id,
                    "contact_id": session.contact_id,
                    "field": key,
                    "error": str(exc),
                },
            )

    def _keys(self, step: Step, session: Session) -> dict[str, list[str]]:
        language = session.language
        if step.collect is Collect.YES_NO:
            return {
                "1": session.flow.yes_words.get(language, []),
                "2": session.flow.no_words.get(language, []),
            }
        if step.languages:
            return {key: step.words.get(key, []) for key in step.languages}
        return {c.key: c.words.get(language, []) for c in step.choices}

    def _value(self, step: Step, answer: Answer, keys: dict[str, list[str]]) -> Any:
        if step.collect is Collect.FREE:
            return "(recording)" if answer.outcome is Outcome.RECORDED and answer.audio else None
        if step.collect is Collect.DIGITS:
            return answer.digits or None
        key = (
            answer.digits if answer.outcome is Outcome.DIGITS else self._key_for(answer.heard, keys)
        )
        if key is None or key not in keys:
            return None
        if step.collect is Collect.YES_NO:
            return key == "1"
        return key

    async def _ask_time(
        self,
        call: AudioSocketCall,
        step: Step,
        session: Session,
        prompt: bytes,
        settings: TurnSettings,
    ) -> str | None:
        """A callback time, keyed (HHMM or MMDDHHMM, then #) or said and confirmed.

        Where a speech model is loaded and the language has spoken times (`when.SPOKEN`), the
        caller may say the time; it is said back for a yes or no. The last try, after speech
        did not work, asks for keys only. None: hung up, or no usable answer.
        """
        spoken = SPOKEN.get(session.language) if self.speech is not None else None
        for attempt in range(MAX_RETRIES):
            recognizer = None
            if spoken is not None and self.speech is not None:
                if attempt == MAX_RETRIES - 1:  # keys only, said plainly
                    prompt = await self._speak_text(session, spoken.keys)
                else:
                    recognizer = self.speech.recognizer(sorted(set(spoken.words)))
            answer = await ask(call, prompt, settings, recognizer=recognizer)
            if answer.outcome is Outcome.HANGUP:
                session.move(SessionState.ABANDONED)
                return None
            now = utcnow()
            if answer.outcome is Outcome.DIGITS:
                keyed = callback_time(answer.digits, now, self.timezone)
                if keyed is not None:
                    return keyed.isoformat()
                continue
            await self._observe(session, answer)
            heard = answer.heard
            if spoken is None or heard is None or heard.empty:
                continue
            at = spoken.read(heard.text, now, self.timezone)
            log.info(
                "ivr heard a callback time",
                extra={
                    "interaction_id": session.interaction_id,
                    "heard": heard.text,
                    "confidence": heard.confidence,
                    "callback_at": at.isoformat() if at is not None else "",
                },
            )
            # Every spoken time is said back, so a fair guess is asked about, not re-prompted.
            if at is None or heard.confidence < self.min_confidence * TIME_GUESS:
                continue
            confirmed = await self._yes_no(
                call, session, spoken.confirm.format(time=spoken.said(at, now, self.timezone))
            )
            if confirmed is None and call.ended.is_set():
                session.move(SessionState.ABANDONED)
                return None
            if confirmed:
                session.answers[f"{step.field}_said"] = heard.text
                return at.isoformat()
        return None

    async def _observe(self, session: Session, answer: Answer) -> None:
        """Publish how long a spoken answer took to decide (end of speech → result)."""
        if answer.outcome is not Outcome.SPEECH or not answer.ended_at or self.bus is None:
            return
        latency = max(0.0, asyncio.get_running_loop().time() - answer.ended_at)
        await self.bus.publish(
            SpeechDecided(latency_s=latency, interaction_id=session.interaction_id or None)
        )

    async def _yes_no(self, call: AudioSocketCall, session: Session, text: str) -> bool | None:
        """Ask once: True for yes (1), False for no (2), None for no usable answer."""
        keys = self._keys(Step(name="", say={}, collect=Collect.YES_NO), session)
        recognizer = None
        if self.speech is not None and any(keys.values()):
            recognizer = self.speech.recognizer(sorted({w for ws in keys.values() for w in ws}))
        answer = await ask(
            call, await self._speak_text(session, text), self.turn, recognizer=recognizer
        )
        await self._observe(session, answer)
        key = (
            answer.digits if answer.outcome is Outcome.DIGITS else self._key_for(answer.heard, keys)
        )
        return None if key not in ("1", "2") else key == "1"

    async def _speak_text(self, session: Session, text: str) -> bytes:
        """A prompt made for this call (a time said back), in the session's language."""
        session.said.append(text)
        return await self.tts.speak(
            text, voice=self._voice(session.flow, session.language), language=session.language
        )

    def _key_for(self, heard: Heard | None, keys: dict[str, list[str]]) -> str | None:
        if heard is None or heard.empty or heard.confidence < self.min_confidence:
            return None  # a guess is a re-prompt, not a decision
        return next((k for k, words in keys.items() if heard.text in words), None)

    async def _transcribe(self, session: Session, field_name: str, audio: bytes) -> None:
        if self.speech is None or not audio:
            return
        try:
            heard = await self.speech.transcribe(audio)
        except (TranscriptionStoppedError, asyncio.CancelledError) as exc:
            # The daemon is stopping: the answer keeps no transcript, and the log says which.
            log.warning(
                "ivr: free-form answer not transcribed: contactd is stopping",
                extra={
                    "interaction_id": session.interaction_id,
                    "field": field_name,
                    "reason": str(exc) or "cancelled",
                },
            )
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        session.answers[field_name] = heard.text
        await self.router.update(
            session.interaction_id, transcript=heard.text, data={"answers": session.answers}
        )

    async def _act(self, call: AudioSocketCall, step: Step, session: Session) -> None:
        if call.ended.is_set():
            session.move(SessionState.ABANDONED)
            return
        await self._confirm(step, session)
        if step.action is Action.TRANSFER:
            await self._route(session, route_of(self.inbound, step.queue), queue=step.queue)
            session.follow_up = FollowUp(outcome="transferred")
            session.move(SessionState.TRANSFERRED)
            return  # closing the socket hands the caller to contactd-route
        if step.action is Action.CALLBACK:
            # The time the caller keyed (a collect = "time" step), else the default delay.
            asked = next(
                (
                    datetime.fromisoformat(session.answers[s.field])
                    for s in session.flow.steps.values()
                    if s.collect is Collect.TIME and s.field in session.answers
                ),
                None,
            )
            session.follow_up = FollowUp(
                outcome="callback_requested",
                team=step.team or None,
                callback_at=asked or utcnow() + CALLBACK_DELAY,
            )
        elif step.action is Action.TASK:
            session.follow_up = FollowUp(
                outcome="needs_agent", wants_agent=True, team=step.team or None
            )
        else:
            session.follow_up = FollowUp(outcome="completed")
        await self._route(session, "hangup")
        session.move(SessionState.COMPLETED)
        await call.hangup()

    async def _confirm(self, step: Step, session: Session) -> None:
        """Queue the step's SMS / e-mail confirmation; it never holds up the call's action."""
        for channel, texts in (
            (Channel.SMS, step.confirm_sms),
            (Channel.EMAIL, step.confirm_email),
        ):
            if not texts or self.outbox is None:
                continue
            language = session.language if session.language in texts else session.flow.languages[0]
            values = {"name": session.contact_name, **session.answers}
            message_id = await send_confirmation(
                self.outbox,
                self.router.db,
                channel=channel,
                text=fill(texts[language], values),
                session_id=session.session_id,
                step=step.name,
                caller_num=sms_number(session),
                contact_id=session.contact_id,
                interaction_id=session.interaction_id,
                language=language,
            )
            if message_id is not None:
                session.answers.setdefault("confirmations", []).append(message_id)
                await self.router.update(session.interaction_id, data={"answers": session.answers})

    async def _route(self, session: Session, route: str, *, queue: str = "") -> None:
        if self.channels is None or not session.caller.channel:
            return
        channel = session.caller.channel
        if queue:
            await self.channels.setvar(channel, "CONTACTD_QUEUE", queue)
        await self.channels.setvar(channel, "CONTACTD_ROUTE", route)
