"""Which flow an automated campaign call runs: the campaign's survey flow, or its text spoken.

The dialer's Originate carries CONTACTD_ATTEMPT; the dialplan's UserEvent ContactdIvr repeats
it, and the attempt row (written before the Originate, DESIGN §3) names the campaign and the
contact. A "message" campaign becomes a one-step flow: say the text, with the contact's
fields filled in, then hang up. Its audio is made by TTS on first use and cached by text and
voice, so a text without fields is made once for the whole campaign.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Formatter

from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import Contact
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.dialer.create import MESSAGE_FIELDS
from contactd.ivr.flows import Action, Flow, Step

log = logging.getLogger(__name__)

MESSAGE_STEP = "message"


@dataclass(frozen=True, slots=True)
class CampaignCall:
    """An outbound campaign call that reached the IVR."""

    campaign_id: int
    flow: Flow
    contact_id: int | None
    contact_name: str
    contact_language: str
    phone_e164: str = ""  # the number dialled: the callee's, where a confirmation SMS goes


def fill_message(text: str, fields: dict[str, str]) -> str:
    """The text with {first_name}, {last_name} and {name} filled in; other braces kept as is.

    Texts are checked when the campaign is created; this stays safe for rows written before.
    """
    out: list[str] = []
    for literal, name, _, _ in Formatter().parse(text):
        out.append(literal)
        if name is not None:
            out.append(fields.get(name, "") if name in MESSAGE_FIELDS else "{" + name + "}")
    return " ".join("".join(out).split())


def message_flow(name: str, text: str, *, language: str, voice: str) -> Flow:
    step = Step(name=MESSAGE_STEP, say={language: text}, action=Action.HANGUP)
    return Flow(
        name=f"message:{name}",
        path=Path(f"<campaign {name}>"),
        languages=(language,),
        voices={language: voice},
        start=MESSAGE_STEP,
        steps={MESSAGE_STEP: step},
    )


class CampaignFlows:
    """Looks up the campaign behind an attempt id and builds the flow its call runs."""

    def __init__(
        self, db: Database, flows: Callable[[str], Flow], *, language: str, voice: str
    ) -> None:
        self.db = db
        self._flows = flows
        self.language = language
        self.voice = voice

    async def for_attempt(self, attempt_id: str) -> CampaignCall | None:
        """None when the attempt is unknown or not an automated IVR campaign's call."""
        async with self.db.session() as session:
            attempt = await session.get(CallAttempt, attempt_id)
            if attempt is None or attempt.campaign_id is None:
                return None
            campaign = await session.get(Campaign, attempt.campaign_id)
            if campaign is None or not (campaign.message_text or campaign.ivr_flow):
                return None
            contact = None
            if attempt.contact_id is not None:
                contact = await session.get(Contact, attempt.contact_id)
        first = contact.first_name if contact is not None else ""
        last = contact.last_name if contact is not None else ""
        name = " ".join(part for part in (first, last) if part)
        if campaign.message_text:
            text = fill_message(
                campaign.message_text, {"first_name": first, "last_name": last, "name": name}
            )
            flow = message_flow(campaign.name, text, language=self.language, voice=self.voice)
        else:
            assert campaign.ivr_flow is not None
            flow = self._flows(campaign.ivr_flow)
        return CampaignCall(
            campaign_id=campaign.id,
            flow=flow,
            contact_id=contact.id if contact is not None else None,
            contact_name=name,
            contact_language=contact.language if contact is not None else "",
            phone_e164=attempt.phone_e164,
        )
