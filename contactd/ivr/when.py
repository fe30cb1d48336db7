"""A callback time keyed by the caller, read as the next moment it names in the site's zone.

Four keys are a time of day, HHMM ("1530": today at 15:30, or tomorrow if that has passed);
eight are a date and a time, MMDDHHMM ("12241000": 24 December at 10:00, this year or next).
Anything else, or a time that does not exist, is None: the flow asks again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


def callback_time(digits: str, now: datetime, zone: str) -> datetime | None:
    """The UTC-aware moment `digits` names after `now` (aware), or None."""
    if not digits.isdigit() or len(digits) not in (4, 8):
        return None
    local_now = now.astimezone(ZoneInfo(zone))
    hour, minute = int(digits[-4:-2]), int(digits[-2:])
    try:
        if len(digits) == 4:
            at = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if at <= local_now:
                at = (at + timedelta(days=1)).replace(hour=hour, minute=minute)
        else:
            month, day = int(digits[:2]), int(digits[2:4])
            at = local_now.replace(
                month=month, day=day, hour=hour, minute=minute, second=0, microsecond=0
            )
            if at <= local_now:
                at = at.replace(year=at.year + 1)
    except ValueError:  # 2561, 1332…, 29 February in a common year
        return None
    # Rebuild in the zone so a date across a DST change gets that date's offset.
    local = datetime(at.year, at.month, at.day, at.hour, at.minute, tzinfo=ZoneInfo(zone))
    return local.astimezone(now.tzinfo)
