"""Reconciliation: settle every attempt the database holds open against Asterisk's live
channels (DESIGN.md §3). Still up → resumed; gone → ended LOST unless the tracker already
knew its fate. It never dials anything."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from contactd.calls.events import CallEnded, CallEvent
from contactd.calls.tracker import CallTracker
from contactd.db.models.calls import CallAttempt
from contactd.enums import CallOutcome

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    checked: int = 0
    resumed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def channels_by_call(live: Sequence[Mapping[str, str]]) -> dict[str, list[Mapping[str, str]]]:
    """Live channels grouped by Linkedid (the attempt id for calls contactd originated)."""
    out: dict[str, list[Mapping[str, str]]] = defaultdict(list)
    for channel in live:
        linkedid = channel.get("Linkedid") or channel.get("Uniqueid")
        if linkedid:
            out[linkedid].append(channel)
        uniqueid = channel.get("Uniqueid")
        if uniqueid and uniqueid != linkedid:
            out[uniqueid].append(channel)
    return out


def settle(
    tracker: CallTracker,
    rows: Sequence[CallAttempt],
    live: Sequence[Mapping[str, str]],
    *,
    now: float,
    skip: Collection[str] = (),
    messages: Mapping[str, str] | None = None,
) -> tuple[ReconcileReport, list[CallEvent]]:
    """Pure: decide each open row's fate from the live channels; returns the events to emit.

    `messages`: the message status Asterisk kept (AstDB contactd-message) per attempt."""
    report = ReconcileReport()
    events: list[CallEvent] = []
    calls = channels_by_call(live)
    for row in rows:
        report.checked += 1
        if row.id in skip:
            report.skipped.append(row.id)
            continue
        channels = calls.get(row.id, [])
        if not channels and row.linkedid:
            channels = calls.get(row.linkedid, [])
        resumed = tracker.resume(
            row.id,
            state=row.state,
            started=row.created_at.timestamp(),
            answered_at=row.answered_at.timestamp() if row.answered_at else None,
            expect_amd=row.detect_machine,
            live=channels,
            now=now,
            amd_status=row.amd_status,
            message_status=(messages or {}).get(row.id),
        )
        events += resumed
        if channels:
            report.resumed.append(row.id)
            continue
        ended = tracker.settle_gone(row.id, now)
        events += ended
        # Lost means its fate is unknown. An end nobody saw whose fate is known all the same
        # (an AMD verdict stored, a message heard kept in AstDB) counts as settled: the log
        # line is what an operator reads after a crash (issue 13 read "lost=3" for calls
        # whose people had all heard the message).
        if any(isinstance(e, CallEnded) and e.outcome is CallOutcome.LOST for e in ended):
            report.lost.append(row.id)
        else:
            report.settled.append(row.id)
    if report.checked:
        log.info(
            "reconciled open call attempts",
            extra={
                "checked": report.checked,
                "resumed": len(report.resumed),
                "lost": len(report.lost),
                "settled": len(report.settled),
                "skipped": len(report.skipped),
            },
        )
    return report, events
