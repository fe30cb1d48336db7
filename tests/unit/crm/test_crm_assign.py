from __future__ import annotations

from contactd.crm.assign import (
    Agent,
    AssignPolicy,
    AssignRequest,
    choose,
    eligible,
    escalation_target,
)

AGENTS = [
    Agent(1, team="sales", skills=frozenset({"de"}), open_tasks=5),
    Agent(2, team="sales", skills=frozenset({"de", "fr"}), open_tasks=1),
    Agent(3, team="support", skills=frozenset({"fr"}), open_tasks=0),
    Agent(4, team="sales", open_tasks=0, available=False),
    Agent(5, team="sales", open_tasks=2, capacity=2),
]


def test_least_loaded_picks_fewest_open_tasks() -> None:
    assert choose(AGENTS, AssignRequest(policy=AssignPolicy.LEAST_LOADED)) == 3
    assert choose(AGENTS, AssignRequest(team="sales")) == 2


def test_round_robin_cycles_through_the_pool_in_id_order() -> None:
    picks: list[int | None] = []
    last = None
    for _ in range(4):
        last = choose(AGENTS, AssignRequest(team="sales", policy=AssignPolicy.ROUND_ROBIN,
                                            last_assignee_id=last))
        picks.append(last)
    assert picks == [1, 2, 1, 2]  # 4 unavailable, 5 at capacity


def test_team_and_skill_narrow_the_pool() -> None:
    assert [a.user_id for a in eligible(AGENTS, AssignRequest(skill="fr"))] == [2, 3]
    assert choose(AGENTS, AssignRequest(team="sales", skill="fr")) == 2
    assert choose(AGENTS, AssignRequest(team="billing")) is None


def test_owner_is_kept_when_eligible() -> None:
    assert choose(AGENTS, AssignRequest(owner_id=1)) == 1
    assert choose(AGENTS, AssignRequest(owner_id=1, keep_owner=False)) == 3
    # An owner who is away or outside the requested team does not get it.
    assert choose(AGENTS, AssignRequest(owner_id=4)) == 3
    assert choose(AGENTS, AssignRequest(owner_id=3, team="sales")) == 2


def test_escalation_prefers_a_supervisor_of_the_team() -> None:
    agents = [*AGENTS, Agent(10, team="sales"), Agent(11, team="support", open_tasks=0)]
    assert escalation_target(agents, team="sales", current_id=1, supervisors={10, 11}) == 10
    assert escalation_target(agents, team="billing", current_id=1, supervisors={10, 11}) == 10
    assert escalation_target(agents, team="sales", current_id=10, supervisors={10, 11}) == 11
    assert escalation_target(agents, team="sales", current_id=1, supervisors=set()) is None
