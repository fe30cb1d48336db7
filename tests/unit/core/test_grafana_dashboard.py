"""The shipped Grafana dashboard reads only series the daemon exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana-dashboard.json"
METRICS = Path(__file__).resolve().parents[3] / "contactd" / "metrics.py"


def test_every_series_in_the_dashboard_is_exported() -> None:
    exported = set(re.findall(r'"(contactd_[a-z_]+)"', METRICS.read_text()))
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = {name for panel in panels for target in panel["targets"]
            for name in re.findall(r"contactd_[a-z_]+", target["expr"])}
    suffixes = ("_total", "_bucket", "_count", "_sum")
    bare = {next((n.removesuffix(s) for s in suffixes if n.endswith(s)), n) for n in used}
    assert bare, "the dashboard shows no contactd series"
    assert bare <= exported, sorted(bare - exported)
