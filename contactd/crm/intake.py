"""Web-form submissions become work: stored first, then put on a contact with a task.

The HTTP edge (contactd/web/intake.py) validates a submission and calls `store`, which writes
it as a web-lead interaction marked `intake: pending` in one transaction before the 202 goes
out. One worker then routes it: the sender's contact (found by e-mail, then phone, else a new
contact tagged `new-lead` with the name given) and the follow-up task by `crm/policy`, made in
the transaction that marks it routed, so each submission is routed exactly once; `sweep()` at
start routes what a crash left waiting. A filled honeypot is stored as `intake: spam` (kept as
evidence, never routed: no contact, no task).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal

from sqlalchemy import Row

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.crm.pending import pending_row, sweep_pending
from contactd.crm.routing import NEW_LEAD_TAG, FollowUp, Router
from contactd.crm.routing_batch import _insert_ids
from contactd.crm.routing_pending import route_pending_many
from contactd.crm.service import ContactInput, ContactService
from contactd.db.base import utcnow
from contactd.db.models import Interaction
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind

log = logging.getLogger(__name__)

# The marker in Interaction.data: its own key, so the SMS recorder's sweep never takes these.
MARKER: Final = "intake"
PENDING: Final = "pending"
DONE: Final = "done"
SPAM: Final = "spam"
# The fields that say who sent a submission; the others make up the message.
CONTACT_FIELDS: Final = frozenset({"name", "first_name", "last_name", "phone", "email"})
OUTCOMES: Final = {"callback": "callback_requested", "reply": "received"}
ROUTE_BATCH: Final = 64
NAME_MAX: Final = 100  # contacts.first_name / last_name


@dataclass(frozen=True)
class Submission:
    """A validated submission (phone already E.164, e-mail lower-cased)."""

    form: str
    title: str
    fields: dict[str, str]
    source: str  # the client's address
    task: Literal["callback", "reply"] = "reply"
    team: str | None = None
    skill: str | None = None
    spam: bool = False

    @property
    def sender(self) -> str:
        return self.fields.get("email") or self.fields.get("phone") or ""

    def message(self) -> str:
        return "\n".join(
            f"{k}: {v}" for k, v in self.fields.items() if k not in CONTACT_FIELDS and v
        )


class WebIntake:
    """Stores submissions; with a router, routes them (a worker, plus a sweep at start)."""

    def __init__(
        self, db: Database, router: Router | None = None, contacts: ContactService | None = None
    ) -> None:
        self.db = db
        self.router = router
        self.contacts = contacts
        self.state = LoopState("web-intake")
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._owner = TaskOwner("web-intake", log)
        self._lock = asyncio.Lock()  # the sweep and the worker never route one submission twice
        self._write_lock = asyncio.Lock()
        self._waiting: list[tuple[Submission, asyncio.Future[int]]] = []

    @property
    def routing(self) -> bool:
        return self.router is not None and self.contacts is not None

    async def __aenter__(self) -> WebIntake:
        if self.routing:
            await self.sweep()
            self._owner.spawn(run_resilient(self._step, self.state, logger=log), "route")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._owner.close()

    async def store(self, sub: Submission) -> int:
        """Durably store one submission; returns its interaction id. Routing follows.

        Group commit: whoever holds the write lock stores every submission waiting at that
        moment in one transaction, so 50 concurrent posts cost a few commits, not 50 waits
        for SQLite's single writer."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((sub, done))
        async with self._write_lock:
            if not done.done():
                batch, self._waiting = self._waiting, []
                try:
                    ids = await self._insert([s for s, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        future.set_exception(exc)
                else:
                    for (_, future), interaction_id in zip(batch, ids, strict=True):
                        future.set_result(interaction_id)
        interaction_id = await done
        if sub.spam:
            log.info(
                "web form honeypot filled; kept as spam",
                extra={"interaction_id": interaction_id, "form": sub.form},
            )
        elif self.routing:
            self._queue.put_nowait(interaction_id)
        return interaction_id

    async def _insert(self, subs: list[Submission]) -> list[int]:
        rows: list[dict[str, Any]] = [
            {
                "contact_id": None,
                "kind": InteractionKind.WEB_LEAD,
                "direction": Direction.INBOUND,
                "channel": Channel.WEB,
                "subject": sub.title[:300],
                "body": sub.message(),
                "remote_address": sub.sender[:320],
                "outcome": "spam" if sub.spam else OUTCOMES[sub.task],
                "data": {
                    MARKER: SPAM if sub.spam else PENDING,
                    "form": sub.form,
                    "fields": sub.fields,
                    "source": sub.source,
                    "task": sub.task,
                    "team": sub.team,
                    "skill": sub.skill,
                },
            }
            for sub in subs
        ]
        now = utcnow()
        for row in rows:  # every column, as `_insert_ids` sends the rows after the first
            row.update(
                started_at=now,
                ended_at=None,
                transcript="",
                recording_ref=None,
                campaign_id=None,
                user_id=None,
            )
        async with self.db.transaction() as session:
            # Three statements for the batch, not one per row (ordered RETURNING on SQLite).
            return await _insert_ids(session, Interaction, rows)

    async def _step(self) -> None:
        """Route what waits in one batch (crm/routing_pending); a sender to decide on (new
        lead, shared address) one by one."""
        ids = [await self._queue.get()]
        while len(ids) < ROUTE_BATCH and not self._queue.empty():
            ids.append(self._queue.get_nowait())
        assert self.router is not None
        try:
            # The write lock too: a store then waits its turn here, rather than in SQLite's
            # busy handler (sleeps of 1 to 100 ms while this transaction holds the database).
            async with self._lock, self._write_lock:
                batch = await route_pending_many(
                    self.router, ids, MARKER, PENDING, DONE, lead_names=_lead_name
                )
            for interaction_id, task_ids in batch.routed.items():
                log.info(
                    "web form routed",
                    extra={"interaction_id": interaction_id, "task_ids": task_ids},
                )
            ids = list(batch.one_by_one)
            while ids:
                await self.route(ids[0])
                ids.pop(0)
        except Exception:
            for interaction_id in ids:  # stored: tried again after the back-off
                self._queue.put_nowait(interaction_id)
            raise

    async def route(self, interaction_id: int) -> bool:
        """Route one waiting submission; False when it was routed before (or is not waiting)."""
        router, contacts = self.router, self.contacts
        if router is None or contacts is None:
            raise RuntimeError("this WebIntake stores only; the daemon's one routes")
        async with self._lock, self._write_lock:  # see _step
            row = await pending_row(self.db, interaction_id, MARKER, PENDING)
            if row is None:
                return False
            data = dict(row.data)
            contact_id = row.contact_id
            fields: dict[str, str] = data.get("fields", {})
            if contact_id is None:
                contact_id = await self._contact(router, contacts, interaction_id, fields)
            routed = await router.finish(
                interaction_id,
                FollowUp(
                    outcome=OUTCOMES.get(str(data.get("task")), "received"),
                    team=data.get("team"),
                    skill=data.get("skill"),
                ),
                data={MARKER: DONE},
            )
        log.info(
            "web form routed",
            extra={
                "interaction_id": interaction_id,
                "contact_id": contact_id,
                "task_ids": routed.task_ids,
                "form": data.get("form"),
            },
        )
        return True

    async def _contact(
        self,
        router: Router,
        contacts: ContactService,
        interaction_id: int,
        fields: dict[str, str],
    ) -> int:
        # A contact made by an earlier try that crashed before linking is found here again
        # by its e-mail or phone, so a retry never makes a second one.
        for address in (fields.get("email", ""), fields.get("phone", "")):
            if address:
                found = await router.find_sender(address)
                if found is not None:
                    await router.link_sender(interaction_id, found)
                    return found.contact_id
        first, last = _names(fields)
        contact_id = await contacts.create_contact(
            ContactInput(
                first_name=first,
                last_name=last,
                phones=[fields["phone"]] if fields.get("phone") else [],
                emails=[fields["email"]] if fields.get("email") else [],
                tags=[NEW_LEAD_TAG],
            ),
            allow_duplicate=True,
        )
        await router.update(interaction_id, contact_id=contact_id)
        return contact_id

    async def sweep(self) -> int:
        """Route every submission stored but not routed (the process stopped in between)."""
        routed = await sweep_pending(self.db, MARKER, PENDING, self.route)
        if routed:
            log.info("web forms routed at start", extra={"routed": routed})
        return routed


def _lead_name(row: Row[Any]) -> tuple[str, str] | None:
    """The name of the new lead an unknown sender becomes in a routing batch, or None to leave
    the submission to `WebIntake.route`. Only a submission with one address (an e-mail or a
    phone) is batched: one-by-one looks a sender up by e-mail, then by phone, and with a single
    address that is the batch's own look-up."""
    fields: dict[str, str] = row.data.get("fields", {})
    if bool(fields.get("email")) == bool(fields.get("phone")):
        return None
    first, last = (part.strip() for part in _names(fields))
    if len(first) > NAME_MAX or len(last) > NAME_MAX:
        return None
    return first, last


def _names(fields: dict[str, str]) -> tuple[str, str]:
    if fields.get("first_name") or fields.get("last_name"):
        return fields.get("first_name", ""), fields.get("last_name", "")
    first, _, last = fields.get("name", "").strip().partition(" ")
    return first, last.strip()
