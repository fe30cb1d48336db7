"""Record the AMI byte stream of calls the dialplan abandons, against the sandbox (dev tool).

    CONTACTD_ASTERISK_INSTANCE=rec scripts/asterisk-sandbox start
    .venv/bin/python -m tests.replay.ami.record_abandon_trace PORT SECRET

writes abandon.ami (the raw stream as Asterisk sent it) and abandon.json (which attempt id
played which scenario), read by test_abandon_replay.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

from contactd.ami.client import AmiClient
from contactd.config import AmiSettings

HERE = Path(__file__).parent
WORLD = "contactd-test-world"

# scenario -> (callee number, channel variables); numbers from tests/peers/asterisk.py.
SCENARIOS: dict[str, tuple[str, dict[str, str]]] = {
    # queue `contactd` has no member: Queue() times out after CONTACTD_AGENT_WAIT_S (2 s)
    "queue_timeout": ("20012", {"CONTACTD_MODE": "queue", "CONTACTD_QUEUE": "contactd"}),
    # the agent handed the call is busy (7198): Dial ends BUSY at once
    "agent_busy": ("20012", {"CONTACTD_MODE": "agent", "CONTACTD_AGENT": f"Local/7198@{WORLD}"}),
    # nobody sets CONTACTD_AGENT within CONTACTD_AGENT_WAIT_S
    "no_agent_in_time": ("20012", {"CONTACTD_MODE": "agent"}),
    # control: the agent (7003) answers; no abandon
    "connected": ("20008", {"CONTACTD_MODE": "agent", "CONTACTD_AGENT": f"Local/7003@{WORLD}"}),
}
RING_TIMEOUT_MS = 3000
CALLS_DONE_AFTER_S = 14.0  # every callee hangs up 12 s after answering at the latest


async def record(port: int, secret: str) -> None:
    ids: dict[str, str] = {}
    with (HERE / "abandon.ami").open("wb") as stream:
        async with AmiClient(AmiSettings(port=port, secret=secret), record_stream=stream) as ami:
            await ami.wait_connected(10)
            for name, (number, variables) in SCENARIOS.items():
                ids[name] = str(uuid.uuid4())
                await ami.originate(ids[name], f"Local/{number}@{WORLD}",
                                    context="contactd-outbound", timeout_ms=RING_TIMEOUT_MS,
                                    variables=variables)
            # A fixed wait, not polling CoreShowChannels: its replies would fill the trace.
            await asyncio.sleep(CALLS_DONE_AFTER_S)
    (HERE / "abandon.json").write_text(json.dumps(ids, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(record(int(sys.argv[1]), sys.argv[2]))
