"""The Originate a campaign call becomes, following the dialplan contract in
asterisk-config/README.md (contactd-outbound and its CONTACTD_* channel variables)."""

from __future__ import annotations

from contactd.calls.service import OriginateRequest
from contactd.db.models.dialer import Campaign, Lead
from contactd.enums import CampaignMode


def outbound_mode(campaign: Campaign) -> str:
    """CONTACTD_MODE: automated campaigns play a message or run an IVR flow (a spoken text
    is the IVR's too); the others hand people to an agent (directly, or through a queue)."""
    if campaign.mode is CampaignMode.AUTOMATED:
        return "ivr" if campaign.ivr_flow or campaign.message_text else "message"
    return "queue" if campaign.agent_queue else "agent"


def originate_request(campaign: Campaign, lead: Lead, ring_timeout_s: float) -> OriginateRequest:
    """The lead's call; its dial string is the trunk's (`[asterisk] trunk_dial_template`)."""
    variables = {"CONTACTD_MODE": outbound_mode(campaign), "CONTACTD_CAMPAIGN": str(campaign.id)}
    if campaign.agent_queue:
        variables["CONTACTD_QUEUE"] = campaign.agent_queue
    if campaign.message:
        variables["CONTACTD_MESSAGE"] = campaign.message
        variables["CONTACTD_MACHINE_MESSAGE"] = campaign.message
    elif campaign.message_text and campaign.mode is CampaignMode.AUTOMATED:
        # An answering machine hears the spoken message too (it is left as a voicemail).
        variables["CONTACTD_MACHINE_IVR"] = "1"
    return OriginateRequest(
        phone_e164=lead.phone_e164,
        caller_id=campaign.caller_id,
        ring_timeout_s=ring_timeout_s,
        # Agents should only ever meet people; preview calls are placed by the agent.
        detect_machine=campaign.mode is not CampaignMode.PREVIEW,
        campaign_id=campaign.id,
        lead_id=lead.id,
        contact_id=lead.contact_id,
        variables=variables,
    )
