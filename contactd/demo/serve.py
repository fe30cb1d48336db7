"""The demo PBX alone, as its own process (bench/scale.py runs it so that its CPU is measured
apart from contactd's):

    CONTACTD_DEMO__TIME_SCALE=1 python -m contactd.demo.serve --secret S [--port 0]

Settings come from CONTACTD_DEMO__* (DemoSettings). Prints `listening <port>` once ready and
runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from contactd.config import load_settings
from contactd.demo.pbx import DemoPbx


async def serve(secret: str, port: int) -> None:
    settings = load_settings(None).demo
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with DemoPbx(settings, secret=secret, port=port) as pbx:
        print(f"listening {pbx.port}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m contactd.demo.serve")
    parser.add_argument("--secret", required=True, help="the AMI secret clients log in with")
    parser.add_argument("--port", type=int, default=0, help="AMI port (0: any free one)")
    args = parser.parse_args()
    asyncio.run(serve(args.secret, args.port))


if __name__ == "__main__":
    main()
