"""Every table; importing this package registers them all on `Base.metadata`."""

from contactd.db.base import Base
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import (
    Address,
    ChannelDecision,
    Consent,
    Contact,
    ContactEmail,
    ContactPhone,
    CustomFieldDef,
    Document,
    DocumentTemplate,
    DoNotCall,
    Interaction,
    InteractionHour,
    Organisation,
    Product,
    ProductLink,
    Segment,
    Tag,
    Task,
    TaskComment,
    contact_tags,
)
from contactd.db.models.dialer import (
    AgentStateRow,
    Campaign,
    DialRefusal,
    Lead,
    LeadList,
    LiveAnswer,
)
from contactd.db.models.duplicates import PossibleDuplicate
from contactd.db.models.mail import InboundEmail
from contactd.db.models.messaging import OutboxMessage
from contactd.db.models.users import AuditEntry, User
from contactd.db.models.web import ApiToken, WebSession

__all__ = [
    "Address",
    "AgentStateRow",
    "ApiToken",
    "AuditEntry",
    "Base",
    "CallAttempt",
    "Campaign",
    "ChannelDecision",
    "Consent",
    "Contact",
    "ContactEmail",
    "ContactPhone",
    "CustomFieldDef",
    "DialRefusal",
    "DoNotCall",
    "Document",
    "DocumentTemplate",
    "InboundEmail",
    "Interaction",
    "InteractionHour",
    "Lead",
    "LeadList",
    "LiveAnswer",
    "Organisation",
    "OutboxMessage",
    "PossibleDuplicate",
    "Product",
    "ProductLink",
    "Segment",
    "Tag",
    "Task",
    "TaskComment",
    "User",
    "WebSession",
    "contact_tags",
]
