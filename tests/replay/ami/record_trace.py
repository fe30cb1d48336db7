"""Record the AMI byte stream of a fixed set of calls against the sandbox (dev tool).

    .venv/bin/python -m tests.replay.ami.record_trace PORT SECRET

writes calls.ami (the raw stream exactly as Asterisk sent it) and calls.json (which attempt
id played which scenario). The replay tests and bench/ami.py read both.
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

# scenario -> (number, variables); expectations live in the tests, from the number table.
SCENARIOS: dict[str, tuple[str, dict[str, str]]] = {
    "human": ("20004", {"CONTACTD_MODE": "message", "CONTACTD_MESSAGE": "beep"}),
    "busy": ("300", {}),
    "no_answer": ("301", {}),
    "unallocated": ("302", {}),
    "congestion": ("303", {}),
    "machine": ("40004", {}),
    "bridged": ("20008", {"CONTACTD_MODE": "agent", "CONTACTD_AGENT": f"Local/7003@{WORLD}"}),
    "no_amd": (
        "20003",
        {"CONTACTD_AMD": "no", "CONTACTD_MODE": "message", "CONTACTD_MESSAGE": "beep"},
    ),
}
RING_TIMEOUT_MS = 3000
CALLS_DONE_AFTER_S = 15.0  # the longest scenario (bridged) lasts about 12 s


async def record(port: int, secret: str) -> None:
    settings = AmiSettings(port=port, secret=secret)
    ids: dict[str, str] = {}
    with (HERE / "calls.ami").open("wb") as stream:
        async with AmiClient(settings, record_stream=stream) as ami:
            await ami.wait_connected(10)
            for name, (number, variables) in SCENARIOS.items():
                attempt_id = str(uuid.uuid4())
                ids[name] = attempt_id
                await ami.originate(
                    attempt_id,
                    f"Local/{number}@{WORLD}",
                    context="contactd-outbound",
                    timeout_ms=RING_TIMEOUT_MS,
                    variables=variables,
                )
            # A fixed wait, not polling CoreShowChannels: its replies would fill the trace.
            await asyncio.sleep(CALLS_DONE_AFTER_S)
    (HERE / "calls.json").write_text(json.dumps(ids, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(record(int(sys.argv[1]), sys.argv[2]))
