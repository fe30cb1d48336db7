"""Domain events the CRM publishes; the web panel and metrics listen, the CRM does not care who."""

from __future__ import annotations

from dataclasses import dataclass

from contactd.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class InteractionRecorded(DomainEvent):
    """`interaction_id` (the base's field) names the row recorded."""

    contact_id: int | None
    kind: str
    outcome: str


@dataclass(frozen=True, kw_only=True)
class TaskCreated(DomainEvent):
    task_id: int
    assignee_id: int | None
    source: str


@dataclass(frozen=True, kw_only=True)
class TaskReminderDue(DomainEvent):
    task_id: int
    assignee_id: int | None


@dataclass(frozen=True, kw_only=True)
class TaskEscalated(DomainEvent):
    task_id: int
    previous_assignee_id: int | None
    assignee_id: int | None


@dataclass(frozen=True, kw_only=True)
class ContactsMerged(DomainEvent):
    survivor_id: int
    merged_id: int


@dataclass(frozen=True, kw_only=True)
class DocumentCreated(DomainEvent):
    document_id: int
    contact_id: int | None
