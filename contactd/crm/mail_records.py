"""Inbound e-mail becomes work for a person: on its sender's contact (or the thread it
answers), attachments as documents, a reply task.

The same crash-safe shape as inbound SMS (`message_records`): `store` keeps the mail
durably first (attachment files fsynced, then one transaction writes the interaction marked
`route="mail-pending"`, its documents and the `inbound_emails` row whose unique key makes a
re-delivery harmless); `route` then attaches the sender and finishes through the router,
whose transaction makes the task and marks the interaction routed (`route="done"`). A sweep
at start routes what a crash left waiting. Refused mail is logged and its raw bytes kept
(owner-only).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError

from contactd.crm.documents import DocumentService
from contactd.crm.pending import pending_row, sweep_pending
from contactd.crm.routing import FollowUp, Router
from contactd.crm.routing_batch import (
    CHUNK,
    _insert_ids,
    _insert_plain,
    _insert_sql,
    in_driver,
    insert_ids_sync,
    plain_rows,
)
from contactd.crm.routing_pending import PendingBatch, route_pending_many
from contactd.db.base import utcnow
from contactd.db.models import Document, InboundEmail, Interaction, OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, Direction, DocumentKind, InteractionKind
from contactd.messaging.mail_in import (
    Intake,
    MailLimits,
    MailRefusedError,
    ParsedMail,
    dedup_key,
    parse_mail,
)

log = logging.getLogger(__name__)

# Its own marker, not the SMS one: each recorder's sweep picks up only its own channel.
ROUTE_PENDING: Final = "mail-pending"
ROUTE_DONE: Final = "done"
REFUSED_DIR: Final = Path("mail") / "refused"
ATTACHMENT_DIR: Final = Path("documents") / "mail"
# Parsing costs a few ms per 10 KiB here: past this size it runs in a worker thread.
INLINE_PARSE_BYTES: Final = 64 * 1024
MAX_STORE_BATCH: Final = 200  # mails per store transaction


@dataclass
class _Store:
    """One parsed mail waiting for the group commit; `done` gets how it was stored."""

    mail: ParsedMail
    key: str
    source: str
    files: list[tuple[Path, int]]
    route: bool = False  # routed by the leader right after the store commits (`receive`)
    done: asyncio.Future[Intake] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    routed: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def fields(self) -> tuple[ParsedMail, str, str, list[tuple[Path, int]]]:
        return self.mail, self.key, self.source, self.files


def _done(item: _Store, result: Intake) -> None:
    """`item` is committed: said in the log now (its sender may wait on its routing next)."""
    if result.status == "stored":
        log.info(
            "inbound mail stored",
            extra={
                "interaction_id": result.interaction_id,
                "message_id": item.mail.message_id,
                "source": item.source,
                "attachments": len(item.files),
            },
        )
        if item.mail.defects:  # taken in, read leniently: say what was wrong with it
            log.warning(
                "inbound mail had defects",
                extra={"interaction_id": result.interaction_id, "defects": list(item.mail.defects)},
            )
    if not item.done.done():  # a caller that went away (a dropped session) cancelled it
        item.done.set_result(result)


def _fail(item: _Store, exc: BaseException | None) -> None:
    if not item.done.done():
        item.done.set_exception(exc or RuntimeError("inbound mail not stored"))


def received_row(
    *,
    relative: Path,
    data: bytes,
    title: str,
    mime_type: str,
    contact_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    """Every column of the `documents` row `DocumentService.add_received` makes, for a Core
    executemany."""
    return {
        "template_id": None,
        "contact_id": contact_id,
        "organisation_id": None,
        "kind": DocumentKind.ATTACHMENT,
        "title": title[:300],
        "storage_path": relative.as_posix(),
        "mime_type": mime_type[:100],
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "created_by_id": None,
        "created_at": now,
    }


class MailIntake:
    """`receive` = `store` then `route`; entering it sweeps what waited across a restart."""

    def __init__(
        self,
        db: Database,
        router: Router,
        documents: DocumentService,
        limits: MailLimits,
        data_dir: Path,
    ) -> None:
        self.db = db
        self.router = router
        self.documents = documents
        self.limits = limits
        self.data_dir = data_dir
        self._lock = asyncio.Lock()  # the sweep and a live mail never route one twice
        self._entered = False
        self.batches = 0  # routing transactions run for `receive` (a test checks they group)
        # Group commit: mails parsed while a store transaction runs wait here and are
        # stored together in the next one (each caller still answers only once committed).
        self._stores: list[_Store] = []
        self._storing = False

    async def __aenter__(self) -> MailIntake:
        await self.sweep()
        # Entered (the daemon), the mails of one store transaction are routed together in
        # the next one, before their senders get an answer.
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entered = False

    async def receive(self, raw: bytes, source: str) -> Intake:
        intake, item = await self._store(raw, source, route=self._entered)
        if intake.status == "stored" and intake.interaction_id is not None:
            try:
                if item is not None and item.route:
                    await item.routed
                else:
                    await self.route(intake.interaction_id)
            except Exception:  # stored already: the sweep at next start routes it
                log.exception(
                    "inbound mail not routed", extra={"interaction_id": intake.interaction_id}
                )
        return intake

    async def store(self, raw: bytes, source: str) -> Intake:
        """Durable before anything else happens; never raises for what the mail contains."""
        return (await self._store(raw, source, route=False))[0]

    async def _store(self, raw: bytes, source: str, *, route: bool) -> tuple[Intake, _Store | None]:
        try:
            if len(raw) > INLINE_PARSE_BYTES:  # a big mail must not stall the event loop
                mail = await asyncio.to_thread(parse_mail, raw, self.limits)
            else:
                mail = parse_mail(raw, self.limits)
        except MailRefusedError as exc:
            return await self._refuse(raw, source, exc), None
        key = dedup_key(raw, mail.message_id)
        # A known mail is found again in the store transaction; one with attachments is
        # looked up first, so a re-delivery does not write its files again.
        known = await self._known(key) if mail.attachments else None
        files = (
            await asyncio.to_thread(self._write_attachments, key, mail)
            if mail.attachments and known is None
            else []
        )
        item: _Store | None = None
        try:
            if known is None:
                item = _Store(mail, key, source, files, route)
                known = await self._stored_together(item)
        except IntegrityError:
            known = await self._known(key)
            if known is None:
                raise  # not the same mail stored by a parallel delivery: a real failure
            return known, None
        if known.status == "duplicate":
            log.info(
                "inbound mail already stored",
                extra={"interaction_id": known.interaction_id, "message_id": mail.message_id},
            )
            return known, None
        interaction_id = known.interaction_id
        return Intake("stored", interaction_id), item

    async def _known(self, key: str) -> Intake | None:
        async with self.db.session() as session:
            if session.get_bind().dialect.name == "sqlite":  # one hand-off, not four
                found = await in_driver(
                    session,
                    lambda db: db.execute(
                        "SELECT id, interaction_id FROM inbound_emails WHERE dedup_key = ?", (key,)
                    ).fetchone(),
                )
            else:
                found = (
                    await session.execute(
                        select(InboundEmail.id, InboundEmail.interaction_id).where(
                            InboundEmail.dedup_key == key
                        )
                    )
                ).first()
        return None if found is None else Intake("duplicate", found[1])

    def _write_attachments(self, key: str, mail: ParsedMail) -> list[tuple[Path, int]]:
        written: list[tuple[Path, int]] = []
        for number, item in enumerate(mail.attachments, 1):
            relative = ATTACHMENT_DIR / key[:24] / f"{number}-{item.filename}"
            self.documents.write_file(relative, item.data)
            written.append((relative, number - 1))
        return written

    async def _stored_together(self, item: _Store) -> Intake:
        """Store `item` in the next store transaction, with whatever else waits for it.

        The first caller to find no transaction running leads: it takes the routing lock
        (so store and routing writes never wait on each other in SQLite's busy handler) and
        commits every queued mail in one transaction, until the queue is empty. A batch that
        fails (a duplicate racing in) is stored again one mail per transaction, so only the
        mail at fault sees the error."""
        self._stores.append(item)
        if self._storing:
            return await item.done
        self._storing = True
        batch: list[_Store] = []
        try:
            while self._stores:
                # One turn of the loop first: the sessions that are ready (those just answered,
                # parsing their next mail) queue theirs, so the transaction takes them all.
                await asyncio.sleep(0)
                batch = self._stores[:MAX_STORE_BATCH]
                del self._stores[:MAX_STORE_BATCH]
                await self._store_batch(batch)
                await self._route_batch(batch)
        finally:
            self._storing = False
            # The leader was cancelled: what it held or nobody will commit gets an error (the
            # sender retries; a mail committed after all is then found as a duplicate).
            for left in [*batch, *self._stores]:
                _fail(left, RuntimeError("inbound mail store stopped"))
                if not left.routed.done():  # stored, not routed: the next start's sweep
                    left.routed.set_result(False)
            self._stores = []
        return await item.done

    async def _route_batch(self, batch: list[_Store]) -> None:
        """Route the mails of `batch` that were stored now, in one transaction (what the
        batch leaves to a decision of its own is routed one by one); each waiting `receive`
        is then told. A mail not routed here stays pending for the next start's sweep."""
        ids: dict[int, _Store] = {}
        for item in batch:
            stored = (
                item.done.result()
                if item.done.done() and not item.done.cancelled() and item.done.exception() is None
                else None
            )
            if (
                item.route
                and stored is not None
                and stored.status == "stored"
                and stored.interaction_id is not None
            ):
                ids[stored.interaction_id] = item
        if not ids:
            return
        self.batches += 1
        try:
            async with self._lock:
                result = await route_pending_many(
                    self.router, list(ids), "route", ROUTE_PENDING, ROUTE_DONE, make_leads=True
                )
        except Exception:
            log.exception(
                "batch routing failed; routing one by one", extra={"interactions": len(ids)}
            )
            result = PendingBatch({}, list(ids))
        for interaction_id, task_ids in result.routed.items():
            log.info(
                "inbound mail routed",
                extra={"interaction_id": interaction_id, "task_ids": task_ids},
            )
        for interaction_id, item in ids.items():
            if interaction_id in result.one_by_one:
                try:
                    routed = await self.route(interaction_id)
                except Exception as exc:
                    if not item.routed.done():
                        item.routed.set_exception(exc)
                    continue
            else:
                routed = interaction_id in result.routed
            if not item.routed.done():
                item.routed.set_result(routed)

    async def _store_batch(self, batch: list[_Store]) -> None:
        try:
            async with self._lock, self.db.transaction() as session:
                results = await self._insert_many(session, batch)
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0], exc)
                return
            for one in batch:  # one transaction each: the error reaches only its own mail
                try:
                    async with self._lock, self.db.transaction() as session:
                        [result] = await self._insert_many(session, [one])
                    _done(one, result)
                except Exception as exc:
                    _fail(one, exc)
            return
        for one, result in zip(batch, results, strict=True):
            _done(one, result)

    async def _insert_many(self, session: Any, batch: list[_Store]) -> list[Intake]:
        """Store each mail of `batch` not stored before (the same mail twice in it is stored
        once): one look-up for the whole batch, then Core executemany of its documents,
        interactions and `inbound_emails` rows (no ORM object per row). On SQLite all of it
        is one hand-off to the driver's thread."""
        if session.get_bind().dialect.name == "sqlite":
            return cast(
                list[Intake], await in_driver(session, lambda db: self._insert_sync(db, batch))
            )
        stored, earlier, sent = await self._look_up(
            session, {b.key for b in batch}, {ref for b in batch for ref in b.mail.thread_refs}
        )
        plan = _Plan(batch, stored, earlier, sent)
        doc_ids = await _insert_ids(session, Document, plan.document_rows())
        interaction_ids = await _insert_ids(session, Interaction, plan.interaction_rows(doc_ids))
        await _insert_plain(session, InboundEmail, plan.inbound_rows(interaction_ids))
        return plan.answers(interaction_ids)

    def _insert_sync(self, db: sqlite3.Connection, batch: list[_Store]) -> list[Intake]:
        """`_insert_many` on SQLite's raw connection, in the driver's thread, inside a write
        transaction begun here (the look-up and the inserts see one state of the database)."""
        if not db.in_transaction:
            db.execute("BEGIN IMMEDIATE")
        stored, earlier, sent = _look_up_sync(
            db, {b.key for b in batch}, {ref for b in batch for ref in b.mail.thread_refs}
        )
        plan = _Plan(batch, stored, earlier, sent)
        doc_ids = insert_ids_sync(db, DOCUMENTS, plan.document_rows())
        interaction_ids = insert_ids_sync(db, INTERACTIONS, plan.interaction_rows(doc_ids))
        rows = plan.inbound_rows(interaction_ids)
        if rows:
            names = list(rows[0])
            db.executemany(_insert_sql(INBOUND, names), plain_rows(rows, names))
        return plan.answers(interaction_ids)

    @staticmethod
    async def _look_up(
        session: Any, keys: set[str], refs: set[str]
    ) -> tuple[dict[str, int], dict[str, tuple[str, int | None]], dict[str, int | None]]:
        """For a store batch: the dedup keys stored before (key -> interaction id), the
        earlier inbound mails the batch's mails answer (message id -> thread, contact), and
        the e-mails contactd sent they answer (the outbox keeps the Message-ID it set as
        provider id -> contact). One IN query per kind and chunk (`_look_up_sync` on
        SQLite)."""
        key_list, ref_list = sorted(keys), sorted(refs)
        stored: dict[str, int] = {}
        earlier: dict[str, tuple[str, int | None]] = {}
        sent: dict[str, int | None] = {}
        for start in range(0, len(key_list), CHUNK):
            found = await session.execute(
                select(InboundEmail.dedup_key, InboundEmail.interaction_id).where(
                    InboundEmail.dedup_key.in_(key_list[start : start + CHUNK])
                )
            )
            stored.update((key, interaction_id) for key, interaction_id in found)
        for start in range(0, len(ref_list), CHUNK):
            part = ref_list[start : start + CHUNK]
            earlier.update(
                {
                    m: (t, c)
                    for m, t, c in await session.execute(
                        select(
                            InboundEmail.message_id, InboundEmail.thread_id, Interaction.contact_id
                        )
                        .select_from(InboundEmail)
                        .outerjoin(Interaction, Interaction.id == InboundEmail.interaction_id)
                        .where(InboundEmail.message_id.in_(part))
                    )
                }
            )
            sent.update(
                {
                    p: c
                    for p, c in await session.execute(
                        select(OutboxMessage.provider_id, OutboxMessage.contact_id).where(
                            OutboxMessage.channel == Channel.EMAIL,
                            OutboxMessage.provider_id.in_(part),
                        )
                    )
                }
            )
        return stored, earlier, sent

    @staticmethod
    def _threads(
        mails: list[tuple[str, ParsedMail]],
        earlier: dict[str, tuple[str, int | None]],
        sent: dict[str, int | None],
    ) -> list[tuple[str, int | None]]:
        """For each (key, mail), in order, the thread it belongs to and that thread's contact:
        an earlier inbound mail (stored before, or earlier in this batch), else an e-mail
        contactd sent; a mail that answers nothing known starts its own thread."""
        found: list[tuple[str, int | None]] = []
        for key, mail in mails:
            thread: tuple[str, int | None] | None = None
            for ref in mail.thread_refs:
                if ref in earlier:
                    thread = earlier[ref]
                    break
                if ref in sent:
                    thread = (ref, sent[ref])
                    break
            if thread is None:
                thread = (mail.message_id or f"key:{key[:32]}", None)
            found.append(thread)
            if mail.message_id is not None:  # a later mail of this batch may answer it
                earlier.setdefault(mail.message_id, (thread[0][:255], thread[1]))
        return found

    async def _refuse(self, raw: bytes, source: str, exc: MailRefusedError) -> Intake:
        kept = await asyncio.to_thread(self._keep_raw, raw)
        log.warning(
            "inbound mail refused",
            extra={
                "code": exc.code,
                "reason": exc.message,
                "source": source,
                "size": len(raw),
                "kept_at": str(kept),
            },
        )
        return Intake("refused", code=exc.code, reason=exc.message, kept_at=kept)

    def _keep_raw(self, raw: bytes) -> Path:
        folder = self.data_dir / REFUSED_DIR
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        target = folder / f"{stamp}-{hashlib.sha256(raw).hexdigest()[:16]}.eml"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        return target

    async def route(self, interaction_id: int) -> bool:
        """Route one waiting mail; False when it was routed before (or is not waiting)."""
        async with self._lock:
            row = await pending_row(self.db, interaction_id, "route", ROUTE_PENDING)
            if row is None:
                return False
            documents = [int(d) for d in row.data.get("documents", [])]
            contact_id = await self.router.attach_sender(interaction_id)
            if documents and contact_id is not None:
                async with self.db.transaction() as session:
                    await session.execute(
                        update(Document)
                        .where(Document.id.in_(documents))
                        .values(contact_id=contact_id)
                    )
            routed = await self.router.finish(
                interaction_id, FollowUp(), data={"route": ROUTE_DONE}
            )
        log.info(
            "inbound mail routed",
            extra={
                "interaction_id": interaction_id,
                "contact_id": contact_id,
                "task_ids": routed.task_ids,
            },
        )
        return True

    async def sweep(self) -> int:
        routed = await sweep_pending(self.db, "route", ROUTE_PENDING, self.route)
        if routed:
            log.info("inbound mail routed at start", extra={"routed": routed})
        return routed


DOCUMENTS: Final = cast(Table, Document.__table__)
INTERACTIONS: Final = cast(Table, Interaction.__table__)
INBOUND: Final = cast(Table, InboundEmail.__table__)


def _look_up_sync(
    db: sqlite3.Connection, keys: set[str], refs: set[str]
) -> tuple[dict[str, int], dict[str, tuple[str, int | None]], dict[str, int | None]]:
    """`MailIntake._look_up` on SQLite's raw connection (in the driver's thread)."""
    key_list, ref_list = sorted(keys), sorted(refs)
    stored: dict[str, int] = {}
    earlier: dict[str, tuple[str, int | None]] = {}
    sent: dict[str, int | None] = {}
    for start in range(0, len(key_list), CHUNK):
        part = key_list[start : start + CHUNK]
        stored.update(
            db.execute(
                "SELECT dedup_key, interaction_id FROM inbound_emails "
                f"WHERE dedup_key IN ({', '.join('?' * len(part))})",
                part,
            )
        )
    for start in range(0, len(ref_list), CHUNK):
        part = ref_list[start : start + CHUNK]
        marks = ", ".join("?" * len(part))
        for m, t, c in db.execute(
            "SELECT e.message_id, e.thread_id, i.contact_id FROM inbound_emails e "
            "LEFT JOIN interactions i ON i.id = e.interaction_id "
            f"WHERE e.message_id IN ({marks})",
            part,
        ):
            earlier[m] = (t, c)
        sent.update(
            db.execute(
                "SELECT provider_id, contact_id FROM outbox_messages "
                f"WHERE channel = ? AND provider_id IN ({marks})",
                [Channel.EMAIL.value, *part],
            )
        )
    return stored, earlier, sent


class _Plan:
    """The rows of one store batch (pure): the mails not stored before, each once, threaded;
    built in the order the inserts need them (documents, interactions, `inbound_emails`)."""

    def __init__(
        self,
        batch: list[_Store],
        stored: dict[str, int],
        earlier: dict[str, tuple[str, int | None]],
        sent: dict[str, int | None],
    ) -> None:
        self.batch = batch
        self.stored = stored
        self.fresh: dict[str, _Store] = {}
        for item in batch:
            if item.key not in stored:
                self.fresh.setdefault(item.key, item)
        self.items = list(self.fresh.values())
        self.threads = MailIntake._threads([(i.key, i.mail) for i in self.items], earlier, sent)
        self.now = utcnow()

    def document_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for item, (_, contact_id) in zip(self.items, self.threads, strict=True):
            for relative, index in item.files:
                attachment = item.mail.attachments[index]
                rows.append(
                    received_row(
                        relative=relative,
                        data=attachment.data,
                        title=attachment.filename,
                        mime_type=attachment.content_type,
                        contact_id=contact_id,
                        now=self.now,
                    )
                )
        return rows

    def interaction_rows(self, doc_ids: list[int]) -> list[dict[str, Any]]:
        documents = iter(doc_ids)
        rows: list[dict[str, Any]] = []
        for item, (thread_id, contact_id) in zip(self.items, self.threads, strict=True):
            mail = item.mail
            rows.append(
                {
                    "contact_id": contact_id,
                    "kind": InteractionKind.EMAIL,
                    "direction": Direction.INBOUND,
                    "channel": Channel.EMAIL,
                    "started_at": self.now,
                    "ended_at": None,
                    "outcome": "received",
                    "subject": mail.subject[:300],
                    "body": mail.text,
                    "transcript": "",
                    "recording_ref": None,
                    "remote_address": mail.sender,
                    "campaign_id": None,
                    "user_id": None,
                    "data": {
                        "route": ROUTE_PENDING,
                        "message_id": mail.message_id,
                        "in_reply_to": list(mail.in_reply_to),
                        "references": list(mail.references),
                        "thread_id": thread_id,
                        "to": list(mail.recipients),
                        "from_name": mail.sender_name,
                        "defects": list(mail.defects),
                        "documents": [next(documents) for _ in item.files],
                    },
                }
            )
        return rows

    def inbound_rows(self, interaction_ids: list[int]) -> list[dict[str, Any]]:
        return [
            {
                "dedup_key": item.key,
                "message_id": item.mail.message_id,
                "thread_id": thread_id[:255],
                "interaction_id": interaction_id,
                "source": item.source,
                "received_at": self.now,
            }
            for item, (thread_id, _), interaction_id in zip(
                self.items, self.threads, interaction_ids, strict=True
            )
        ]

    def answers(self, interaction_ids: list[int]) -> list[Intake]:
        """What became of each mail of the batch, in order."""
        for item, interaction_id in zip(self.items, interaction_ids, strict=True):
            self.stored[item.key] = interaction_id
        return [
            Intake(
                "stored" if self.fresh.get(item.key) is item else "duplicate",
                self.stored[item.key],
            )
            for item in self.batch
        ]
