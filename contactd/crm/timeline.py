"""A contact's timeline: interactions, tasks, documents and channel decisions, in time order."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contactd.db.models import ChannelDecision, Document, Interaction, Task
from contactd.db.session import Database


class EntryKind(StrEnum):
    INTERACTION = "interaction"
    TASK = "task"
    DOCUMENT = "document"
    DECISION = "channel_decision"


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: EntryKind
    id: int
    title: str
    detail: dict[str, Any] = field(default_factory=dict)


async def timeline(
    db: Database,
    contact_id: int,
    *,
    limit: int = 200,
    before: datetime | None = None,
    newest_first: bool = True,
) -> list[TimelineEntry]:
    """Up to `limit` entries before `before`; each source is read by its (contact, time) index."""
    return await db.read(
        lambda session: read_timeline(
            session, contact_id, limit=limit, before=before, newest_first=newest_first
        )
    )


def read_timeline(
    session: Session,
    contact_id: int,
    *,
    limit: int = 200,
    before: datetime | None = None,
    newest_first: bool = True,
) -> list[TimelineEntry]:
    """`timeline` inside a caller's read (see `Database.read`)."""

    def recent(column: Any, stmt: Any) -> Any:
        if before is not None:
            stmt = stmt.where(column < before)
        return stmt.order_by(column.desc()).limit(limit)

    # Named columns, not ORM objects: rows are read and dropped, and building a hundred
    # mapped objects per page was most of the card's read.
    i_ = Interaction
    interactions = session.execute(
        recent(
            i_.started_at,
            select(
                i_.id, i_.started_at, i_.ended_at, i_.subject, i_.direction, i_.kind, i_.channel,
                i_.outcome, i_.body, i_.transcript, i_.recording_ref, i_.campaign_id, i_.user_id,
            ).where(i_.contact_id == contact_id),
        )
    )
    sources: list[list[TimelineEntry]] = [
        [
            TimelineEntry(
                i.started_at,
                EntryKind.INTERACTION,
                i.id,
                i.subject or f"{i.direction.value} {i.kind.value.replace('_', ' ')}",
                {
                    "kind": i.kind.value,
                    "direction": i.direction.value,
                    "channel": i.channel.value,
                    "outcome": i.outcome,
                    "body": i.body,
                    "transcript": i.transcript,
                    "recording_ref": i.recording_ref,
                    "ended_at": i.ended_at,
                    "campaign_id": i.campaign_id,
                    "user_id": i.user_id,
                },
            )
            for i in interactions
        ]
    ]
    tasks = session.execute(
        recent(
            Task.created_at,
            select(
                Task.id, Task.created_at, Task.title, Task.status, Task.source, Task.due_at,
                Task.assignee_id, Task.priority, Task.escalated_at, Task.completed_at,
            ).where(Task.contact_id == contact_id),
        )
    )
    sources.append(
        [
            TimelineEntry(
                t.created_at,
                EntryKind.TASK,
                t.id,
                t.title,
                {
                    "status": t.status.value,
                    "source": t.source.value,
                    "due_at": t.due_at,
                    "assignee_id": t.assignee_id,
                    "priority": t.priority.value,
                    "escalated_at": t.escalated_at,
                    "completed_at": t.completed_at,
                },
            )
            for t in tasks
        ]
    )
    documents = session.execute(
        recent(
            Document.created_at,
            select(
                Document.id, Document.created_at, Document.title, Document.kind,
                Document.storage_path, Document.size_bytes, Document.sha256,
            ).where(Document.contact_id == contact_id),
        )
    )
    sources.append(
        [
            TimelineEntry(
                d.created_at,
                EntryKind.DOCUMENT,
                d.id,
                d.title,
                {
                    "kind": d.kind.value,
                    "storage_path": d.storage_path,
                    "size_bytes": d.size_bytes,
                    "sha256": d.sha256,
                },
            )
            for d in documents
        ]
    )
    cd = ChannelDecision
    decisions = session.execute(
        recent(
            cd.decided_at,
            select(
                cd.id, cd.decided_at, cd.channel, cd.reason, cd.campaign_id, cd.details,
            ).where(cd.contact_id == contact_id),
        )
    )
    sources.append(
        [
            TimelineEntry(
                d.decided_at,
                EntryKind.DECISION,
                d.id,
                f"{d.channel.value}: {d.reason}",
                {
                    "channel": d.channel.value,
                    "reason": d.reason,
                    "campaign_id": d.campaign_id,
                    **d.details,
                },
            )
            for d in decisions
        ]
    )
    merged = heapq.merge(*sources, key=lambda e: (e.at, e.kind.value, e.id), reverse=True)
    entries = list(merged)[:limit]
    return entries if newest_first else entries[::-1]
