"""Where templates, CSS, JS and catalogues live: inside the installed package (the wheel's
build step copies the top-level web/ folder to contactd/web/bundle), else in the source
tree's web/ folder."""

from __future__ import annotations

from pathlib import Path

PACKAGED = Path(__file__).parent / "bundle"
SOURCE = Path(__file__).resolve().parents[2] / "web"


def asset_root() -> Path:
    for root in (PACKAGED, SOURCE):
        if (root / "templates").is_dir():
            return root
    raise FileNotFoundError(
        f"web panel assets not found in {PACKAGED} or {SOURCE}: reinstall contactd"
    )
