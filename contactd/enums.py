"""Enumerations shared by the pure policy layer, the services and the stored rows.

They are StrEnums so that the stored value, the JSON value and the log value are one string.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"


class PartyKind(StrEnum):
    """How the business relates to an organisation or person."""

    BUYER = "buyer"
    SUPPLIER = "supplier"
    PARTNER = "partner"


class PhoneType(StrEnum):
    MOBILE = "mobile"
    FIXED = "fixed"
    VOIP = "voip"
    OTHER = "other"


class Channel(StrEnum):
    CALL = "call"
    SMS = "sms"
    EMAIL = "email"
    WEB = "web"
    NONE = "none"


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    REVOKED = "revoked"


class InteractionKind(StrEnum):
    CALL = "call"
    IVR_SESSION = "ivr_session"
    SMS = "sms"
    EMAIL = "email"
    NOTE = "note"
    WEB_LEAD = "web_lead"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class TaskStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TaskSource(StrEnum):
    MANUAL = "manual"
    IVR_INTAKE = "ivr_intake"
    MISSED_CALL = "missed_call"
    CALLBACK = "callback"
    CAMPAIGN = "campaign"
    MESSAGE = "message"
    REVIEW = "review"  # a sender matching several contacts (crm/senders.py)


class DocumentKind(StrEnum):
    CONTRACT = "contract"
    INVOICE = "invoice"
    OFFER = "offer"
    LETTER = "letter"
    ATTACHMENT = "attachment"  # received (an e-mail attachment), not made from a template


class ProductKind(StrEnum):
    PRODUCT = "product"
    SERVICE = "service"


class ProductRelation(StrEnum):
    BUYS = "buys"
    SUPPLIES = "supplies"


class CustomFieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    CHOICE = "choice"


class CustomFieldEntity(StrEnum):
    CONTACT = "contact"
    ORGANISATION = "organisation"


class CampaignMode(StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"
    AUTOMATED = "automated"
    # Messaging campaigns: a template sent by SMS or e-mail through the outbox, never dialled.
    SMS = "sms"
    EMAIL = "email"


MESSAGE_CAMPAIGN_MODES: frozenset[CampaignMode] = frozenset({CampaignMode.SMS, CampaignMode.EMAIL})


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"


class LeadStatus(StrEnum):
    NEW = "new"
    DIALING = "dialing"
    RETRY = "retry"
    CALLBACK = "callback"
    DONE = "done"
    EXHAUSTED = "exhausted"
    DNC = "dnc"
    FALLBACK = "fallback"


class AttemptState(StrEnum):
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    BRIDGED = "bridged"
    ENDED = "ended"


class CallOutcome(StrEnum):
    HUMAN = "human"
    MACHINE = "machine"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNALLOCATED = "unallocated"
    CONGESTION = "congestion"
    REJECTED = "rejected"
    FAILED = "failed"
    ABANDONED = "abandoned"
    LOST = "lost"  # the call's fate could not be learnt: lost during an outage


class MessageState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
