"""The do-not-call list: numbers the dialer never dials, globally or for one campaign.

Numbers are stored as E.164 (the form the dialer and the SMS opt-out compare), so whatever a
person types is normalised with the project's one phone parser first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.db.models.crm import Consent, DoNotCall
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.enums import Channel, ConsentStatus
from contactd.errors import NotFoundError
from contactd.phones import parse_phone


async def record_opt_out(
    session: AsyncSession, contact_id: int | None, e164: str, *, source: str, reason: str
) -> None:
    """A person asked for no more contact: SMS and call consent revoked (new rows, history
    kept) and the number on the global list, in the caller's transaction."""
    if contact_id is not None:
        for channel in (Channel.SMS, Channel.CALL):
            session.add(Consent(contact_id=contact_id, channel=channel,
                                status=ConsentStatus.REVOKED, source=source))
    # NULL campaign_id never collides in a unique index, so look before adding.
    listed = await session.scalar(select(DoNotCall.id).where(DoNotCall.e164 == e164, _scope(None)))
    if listed is None:
        session.add(DoNotCall(e164=e164, reason=reason, source=source))


def _scope(campaign_id: int | None) -> ColumnElement[bool]:
    if campaign_id is None:
        return DoNotCall.campaign_id.is_(None)
    return DoNotCall.campaign_id == campaign_id


@dataclass(frozen=True)
class DncEntry:
    e164: str
    campaign: str | None  # None: every campaign
    reason: str
    source: str
    created_at: datetime


class DncService:
    def __init__(self, db: Database, *, default_region: str) -> None:
        self.db = db
        self.region = default_region

    async def _campaign_id(self, name: str | None) -> int | None:
        if name is None:
            return None
        async with self.db.session() as session:
            found = await session.scalar(select(Campaign.id).where(Campaign.name == name))
        if found is None:
            raise NotFoundError(f"no campaign named {name!r}", field="campaign")
        return found

    async def add(self, raw: str, *, reason: str = "", source: str = "manual",
                  campaign: str | None = None) -> tuple[str, bool]:
        """(the stored number, whether it was new); adding twice changes nothing."""
        e164 = parse_phone(raw, self.region).e164
        campaign_id = await self._campaign_id(campaign)
        async with self.db.transaction() as session:
            exists = await session.scalar(
                select(DoNotCall.id).where(DoNotCall.e164 == e164, _scope(campaign_id))
            )
            if exists is not None:
                return e164, False
            session.add(DoNotCall(e164=e164, campaign_id=campaign_id, reason=reason[:200],
                                  source=source[:64]))
        return e164, True

    async def remove(self, raw: str, *, campaign: str | None = None) -> str:
        e164 = parse_phone(raw, self.region).e164
        campaign_id = await self._campaign_id(campaign)
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(DoNotCall).where(DoNotCall.e164 == e164, _scope(campaign_id))
            )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFoundError(f"{e164} is not on the do-not-call list"
                                + (f" of campaign {campaign!r}" if campaign else ""))
        return e164

    async def entries(self, *, campaign: str | None = None) -> list[DncEntry]:
        stmt = (select(DoNotCall, Campaign.name)
                .outerjoin(Campaign, Campaign.id == DoNotCall.campaign_id)
                .order_by(DoNotCall.e164, DoNotCall.id))
        if campaign is not None:
            stmt = stmt.where(DoNotCall.campaign_id == await self._campaign_id(campaign))
        async with self.db.session() as session:
            rows = (await session.execute(stmt)).all()
        return [DncEntry(row.e164, name, row.reason, row.source, row.created_at)
                for row, name in rows]
