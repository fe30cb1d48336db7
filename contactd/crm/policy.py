"""Which follow-up tasks an interaction calls for: pure rules the router applies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from contactd.enums import Direction, InteractionKind, TaskPriority, TaskSource

# Outcomes of a finished interaction that mean "somebody must act".
MISSED_OUTCOMES: Final = frozenset({"missed", "abandoned", "no_answer", "voicemail"})
CALLBACK_OUTCOMES: Final = frozenset({"callback", "callback_requested"})
CAMPAIGN_FOLLOW_UP_OUTCOMES: Final = frozenset(
    {"interested", "callback", "callback_requested", "human", "complaint", "needs_agent"}
)
MISSED_CALL_DUE: Final = timedelta(hours=1)
INTAKE_DUE: Final = timedelta(hours=4)
CAMPAIGN_DUE: Final = timedelta(days=1)
REMIND_BEFORE: Final = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class InteractionFacts:
    kind: InteractionKind
    direction: Direction
    outcome: str
    campaign_id: int | None = None
    subject: str = ""
    callback_at: datetime | None = None
    wants_agent: bool = False  # the IVR intake ended with a request a person must handle
    skill: str | None = None
    team: str | None = None


@dataclass(frozen=True, slots=True)
class TaskSpec:
    title: str
    source: TaskSource
    due_at: datetime
    remind_at: datetime | None
    priority: TaskPriority = TaskPriority.NORMAL
    team: str | None = None
    skill: str | None = None


def follow_ups(facts: InteractionFacts, now: datetime, who: str) -> list[TaskSpec]:
    """The tasks to create for one recorded interaction (at most one)."""
    outcome = facts.outcome.lower()
    if outcome == "opted_out":  # a STOP reply is acted on by itself: nobody needs to answer it
        return []

    def task(
        title: str, source: TaskSource, due: datetime, priority: TaskPriority = TaskPriority.NORMAL
    ) -> list[TaskSpec]:
        return [
            TaskSpec(
                title=title[:300], source=source, due_at=due, remind_at=due - REMIND_BEFORE,
                priority=priority, team=facts.team, skill=facts.skill,
            )
        ]

    if facts.callback_at is not None or outcome in CALLBACK_OUTCOMES:
        due = facts.callback_at or now + MISSED_CALL_DUE
        return task(f"Call back {who}", TaskSource.CALLBACK, due, TaskPriority.HIGH)
    if facts.campaign_id is not None and facts.direction is Direction.OUTBOUND:
        if outcome in CAMPAIGN_FOLLOW_UP_OUTCOMES:
            title = f"Campaign follow-up: {who} ({outcome})"
            return task(title, TaskSource.CAMPAIGN, now + CAMPAIGN_DUE)
        return []
    # Before the IVR request rule: a caller who hung up in the IVR (its subject names the
    # flow) is a missed call to return, not a request someone understood.
    if (
        facts.kind in (InteractionKind.CALL, InteractionKind.IVR_SESSION)
        and facts.direction is Direction.INBOUND
        and outcome in MISSED_OUTCOMES
    ):
        title = f"Missed call from {who}"
        return task(title, TaskSource.MISSED_CALL, now + MISSED_CALL_DUE, TaskPriority.HIGH)
    if facts.kind is InteractionKind.IVR_SESSION and (facts.wants_agent or facts.subject):
        title = f"IVR request from {who}" + (f": {facts.subject}" if facts.subject else "")
        return task(title, TaskSource.IVR_INTAKE, now + INTAKE_DUE)
    if facts.direction is Direction.INBOUND and facts.kind in (
        InteractionKind.SMS,
        InteractionKind.EMAIL,
        InteractionKind.WEB_LEAD,
    ):
        title = f"Reply to {facts.kind.value.replace('_', ' ')} from {who}"
        return task(title, TaskSource.MESSAGE, now + INTAKE_DUE)
    return []
