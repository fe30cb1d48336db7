"""Who gets a task: pure assignment policies (no I/O), fed a snapshot of the agents.

Policies: keep the contact's owner, by team/skill, round-robin, least-loaded. They compose:
the owner wins when eligible, otherwise the team/skill filter narrows the pool and
round-robin or least-loaded picks within it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class AssignPolicy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"


@dataclass(frozen=True, slots=True)
class Agent:
    user_id: int
    team: str | None = None
    skills: frozenset[str] = frozenset()
    open_tasks: int = 0
    available: bool = True
    capacity: int | None = None  # open tasks beyond which the agent takes no more


@dataclass(frozen=True, slots=True)
class AssignRequest:
    team: str | None = None
    skill: str | None = None
    owner_id: int | None = None  # the contact's owner
    keep_owner: bool = True
    policy: AssignPolicy = AssignPolicy.LEAST_LOADED
    last_assignee_id: int | None = None  # round-robin cursor: who got the previous task


def eligible(agents: Sequence[Agent], request: AssignRequest) -> list[Agent]:
    """Available agents of the team with the skill and spare capacity, by user id."""
    pool = [
        a
        for a in agents
        if a.available
        and (request.team is None or a.team == request.team)
        and (request.skill is None or request.skill in a.skills)
        and (a.capacity is None or a.open_tasks < a.capacity)
    ]
    return sorted(pool, key=lambda a: a.user_id)


def choose(agents: Sequence[Agent], request: AssignRequest) -> int | None:
    """The user id to assign, or None when nobody fits (the task stays in the team queue)."""
    pool = eligible(agents, request)
    if request.keep_owner and request.owner_id is not None:
        for agent in pool:
            if agent.user_id == request.owner_id:
                return agent.user_id
    if not pool:
        return None
    if request.policy is AssignPolicy.ROUND_ROBIN:
        if request.last_assignee_id is None:
            return pool[0].user_id
        for agent in pool:
            if agent.user_id > request.last_assignee_id:
                return agent.user_id
        return pool[0].user_id
    return min(pool, key=lambda a: (a.open_tasks, a.user_id)).user_id


def escalation_target(
    agents: Sequence[Agent], *, team: str | None, current_id: int | None, supervisors: set[int]
) -> int | None:
    """An overdue task goes to an available supervisor of its team (else any supervisor)."""
    candidates = [a for a in agents if a.user_id in supervisors and a.available]
    in_team = [a for a in candidates if team is not None and a.team == team]
    for pool in (in_team, candidates):
        choices = [a for a in pool if a.user_id != current_id]
        if choices:
            return min(choices, key=lambda a: (a.open_tasks, a.user_id)).user_id
    return None
