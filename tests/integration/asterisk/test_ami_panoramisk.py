"""The panoramisk internals AmiClient relies on, pinned (pyproject: panoramisk>=1.4,<1.5).

AmiClient drives panoramisk's protocol itself and reaches into three private parts: the
Manager's `awaiting_actions` (panoramisk re-sends what is queued there after a reconnect, which
must never happen to an Originate: DESIGN.md §4 trap 1), the protocol's `responses` (pending
actions by ActionID) and the Manager's `dispatch` / `connection_lost` hooks. If a panoramisk
upgrade moves any of them, these tests fail instead of calls being dialed twice.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import tomllib
from collections import deque
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from contactd.ami.client import AmiClient
from contactd.ami.errors import AmiDisconnected
from tests.peers.asterisk import AsteriskSandbox
from tests.peers.tcpproxy import TcpProxy

pytestmark = pytest.mark.asterisk
ROOT = Path(__file__).parents[3]


def test_the_installed_panoramisk_is_the_pinned_one() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (spec,) = [r for r in project["project"]["dependencies"] if r.startswith("panoramisk")]
    requirement = Requirement(spec)
    assert requirement.specifier.contains(importlib.metadata.version("panoramisk"))
    assert "<" in str(requirement.specifier), "keep an upper bound: private attributes are used"


async def test_a_pending_action_fails_on_a_drop_and_is_never_resent(
    asterisk: AsteriskSandbox, ami_proxy: TcpProxy
) -> None:
    settings = asterisk.ami_settings(ami_proxy.port)
    async with AmiClient(settings) as ami:
        await ami.wait_connected(20)
        epoch = ami.epoch
        manager = ami._manager
        assert isinstance(manager.awaiting_actions, deque)
        # WaitEvent is answered only when an event comes or after its timeout: it stays pending.
        pending = asyncio.ensure_future(
            ami.action({"Action": "WaitEvent", "Timeout": "30"}, timeout_s=30)
        )
        await asyncio.sleep(0)  # one loop turn: the task runs up to its wait for the answer
        assert ami.pending_actions == 1 and manager.protocol.responses
        await ami_proxy.drop()
        with pytest.raises(AmiDisconnected):
            await asyncio.wait_for(pending, 10)
        # panoramisk queued it for re-sending; AmiClient emptied that queue
        assert len(manager.awaiting_actions) == 0
        await ami.wait_connected(20)
        assert ami.epoch > epoch
        assert len(manager.awaiting_actions) == 0 and ami.pending_actions == 0
        await ami.ping()
