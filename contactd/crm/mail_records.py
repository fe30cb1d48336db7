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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from contactd.crm.documents import DocumentService
from contactd.crm.pending import pending_row, sweep_pending
from contactd.crm.routing import FollowUp, Router
from contactd.crm.routing_pending import PendingBatcher
from contactd.db.models import Document, InboundEmail, Interaction, OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind
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
    done: asyncio.Future[Intake] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def fields(self) -> tuple[ParsedMail, str, str, list[tuple[Path, int]]]:
        return self.mail, self.key, self.source, self.files


def _done(item: _Store, result: Intake) -> None:
    if not item.done.done():  # a caller that went away (a dropped session) cancelled it
        item.done.set_result(result)


def _fail(item: _Store, exc: BaseException | None) -> None:
    if not item.done.done():
        item.done.set_exception(exc or RuntimeError("inbound mail not stored"))

class MailIntake:
    """`receive` = `store` then `route`; entering it sweeps what waited across a restart."""

    def __init__(
        self, db: Database, router: Router, documents: DocumentService, limits: MailLimits,
        data_dir: Path,
    ) -> None:
        self.db = db
        self.router = router
        self.documents = documents
        self.limits = limits
        self.data_dir = data_dir
        self._lock = asyncio.Lock()  # the sweep and a live mail never route one twice
        self._batcher: PendingBatcher | None = None
        # Group commit: mails parsed while a store transaction runs wait here and are
        # stored together in the next one (each caller still answers only once committed).
        self._stores: list[_Store] = []
        self._storing = False

    async def __aenter__(self) -> MailIntake:
        await self.sweep()
        # Entered (the daemon), concurrent deliveries are routed together in one transaction.
        self._batcher = await PendingBatcher(
            self.router, key="route", mark=ROUTE_PENDING, done=ROUTE_DONE, one=self.route,
            lock=self._lock, name="mail-routing",
            make_leads=True).__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await batcher.__aexit__(exc_type, exc, tb)

    async def receive(self, raw: bytes, source: str) -> Intake:
        intake = await self.store(raw, source)
        if intake.status == "stored" and intake.interaction_id is not None:
            try:
                if self._batcher is not None:
                    await self._batcher.route(intake.interaction_id)
                else:
                    await self.route(intake.interaction_id)
            except Exception:  # stored already: the sweep at next start routes it
                log.exception("inbound mail not routed",
                              extra={"interaction_id": intake.interaction_id})
        return intake

    async def store(self, raw: bytes, source: str) -> Intake:
        """Durable before anything else happens; never raises for what the mail contains."""
        try:
            if len(raw) > INLINE_PARSE_BYTES:  # a big mail must not stall the event loop
                mail = await asyncio.to_thread(parse_mail, raw, self.limits)
            else:
                mail = parse_mail(raw, self.limits)
        except MailRefusedError as exc:
            return await self._refuse(raw, source, exc)
        key = dedup_key(raw, mail.message_id)
        # A known mail is found again in the store transaction; one with attachments is
        # looked up first, so a re-delivery does not write its files again.
        known = await self._known(key) if mail.attachments else None
        files = (await asyncio.to_thread(self._write_attachments, key, mail)
                 if mail.attachments and known is None else [])
        try:
            if known is None:
                known = await self._stored_together(_Store(mail, key, source, files))
        except IntegrityError:
            known = await self._known(key)
            if known is None:
                raise  # not the same mail stored by a parallel delivery: a real failure
            return known
        if known.status == "duplicate":
            log.info("inbound mail already stored",
                     extra={"interaction_id": known.interaction_id,
                            "message_id": mail.message_id})
            return known
        interaction_id = known.interaction_id
        log.info("inbound mail stored",
                 extra={"interaction_id": interaction_id, "message_id": mail.message_id,
                        "source": source, "attachments": len(files)})
        if mail.defects:  # taken in, read leniently: say what was wrong with it
            log.warning("inbound mail had defects",
                        extra={"interaction_id": interaction_id, "defects": list(mail.defects)})
        return Intake("stored", interaction_id)

    async def _known(self, key: str) -> Intake | None:
        async with self.db.session() as session:
            found = (await session.execute(
                select(InboundEmail.id, InboundEmail.interaction_id)
                .where(InboundEmail.dedup_key == key))).first()
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
                batch = self._stores[:MAX_STORE_BATCH]
                del self._stores[:MAX_STORE_BATCH]
                await self._store_batch(batch)
        finally:
            self._storing = False
            # The leader was cancelled: what it held or nobody will commit gets an error (the
            # sender retries; a mail committed after all is then found as a duplicate).
            for left in [*batch, *self._stores]:
                _fail(left, RuntimeError("inbound mail store stopped"))
            self._stores = []
        return await item.done

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
        """Store each mail of `batch` not stored before (one look-up for the whole batch; the
        same mail twice in it is stored once)."""
        stored: dict[str, int] = {key: interaction_id for key, interaction_id in (
            await session.execute(
                select(InboundEmail.dedup_key, InboundEmail.interaction_id)
                .where(InboundEmail.dedup_key.in_({b.key for b in batch}))))}
        results: list[Intake] = []
        for item in batch:
            if item.key in stored:
                results.append(Intake("duplicate", stored[item.key]))
                continue
            stored[item.key] = await self._insert_in(session, *item.fields)
            results.append(Intake("stored", stored[item.key]))
        return results

    async def _insert_in(
        self, session: Any, mail: ParsedMail, key: str, source: str,
        files: list[tuple[Path, int]],
    ) -> int:
        thread_id, contact_id = await self._thread(session, mail)
        thread_id = thread_id or mail.message_id or f"key:{key[:32]}"
        docs: list[Document] = []
        for relative, index in files:
            item = mail.attachments[index]
            docs.append(self.documents.add_received(
                session, relative=relative, data=item.data, title=item.filename,
                mime_type=item.content_type, contact_id=contact_id))
        row = Interaction(
            contact_id=contact_id, kind=InteractionKind.EMAIL, direction=Direction.INBOUND,
            channel=Channel.EMAIL, subject=mail.subject[:300], body=mail.text,
            remote_address=mail.sender, outcome="received",
            data={"route": ROUTE_PENDING, "message_id": mail.message_id,
                  "in_reply_to": list(mail.in_reply_to),
                  "references": list(mail.references), "thread_id": thread_id,
                  "to": list(mail.recipients), "from_name": mail.sender_name,
                  "defects": list(mail.defects)},
        )
        if docs:
            await session.flush()  # their ids go on the interaction
        row.data["documents"] = [d.id for d in docs]
        session.add(row)
        await session.flush()
        session.add(InboundEmail(dedup_key=key, message_id=mail.message_id,
                                 thread_id=thread_id[:255], interaction_id=row.id,
                                 source=source))
        return row.id

    @staticmethod
    async def _thread(session: Any, mail: ParsedMail) -> tuple[str | None, int | None]:
        """The thread this mail answers and its contact: an earlier inbound mail, else an
        e-mail contactd sent (the outbox keeps the Message-ID it set as provider id)."""
        refs = mail.thread_refs
        if not refs:
            return None, None
        earlier = {m: (t, i) for m, t, i in await session.execute(
            select(InboundEmail.message_id, InboundEmail.thread_id,
                   InboundEmail.interaction_id).where(InboundEmail.message_id.in_(refs)))}
        sent = {p: c for p, c in await session.execute(
            select(OutboxMessage.provider_id, OutboxMessage.contact_id).where(
                OutboxMessage.channel == Channel.EMAIL, OutboxMessage.provider_id.in_(refs)))}
        for ref in refs:
            if ref in earlier:
                thread_id, interaction_id = earlier[ref]
                contact = None if interaction_id is None else await session.scalar(
                    select(Interaction.contact_id).where(Interaction.id == interaction_id))
                return thread_id, contact
            if ref in sent:
                return ref, sent[ref]
        return None, None

    async def _refuse(self, raw: bytes, source: str, exc: MailRefusedError) -> Intake:
        kept = await asyncio.to_thread(self._keep_raw, raw)
        log.warning("inbound mail refused",
                    extra={"code": exc.code, "reason": exc.message, "source": source,
                           "size": len(raw), "kept_at": str(kept)})
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
                    await session.execute(update(Document).where(Document.id.in_(documents))
                                          .values(contact_id=contact_id))
            routed = await self.router.finish(interaction_id, FollowUp(),
                                              data={"route": ROUTE_DONE})
        log.info("inbound mail routed",
                 extra={"interaction_id": interaction_id, "contact_id": contact_id,
                        "task_ids": routed.task_ids})
        return True

    async def sweep(self) -> int:
        routed = await sweep_pending(self.db, "route", ROUTE_PENDING, self.route)
        if routed:
            log.info("inbound mail routed at start", extra={"routed": routed})
        return routed
