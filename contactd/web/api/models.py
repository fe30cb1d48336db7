"""The API's typed shapes: they validate requests and they are the OpenAPI schemas."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contactd.config import DispositionName
from contactd.dialer.agents import AgentState
from contactd.enums import (
    CampaignMode,
    CampaignStatus,
    Channel,
    DocumentKind,
    PartyKind,
    PhoneType,
    ProductKind,
    TaskPriority,
    TaskStatus,
)

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
Name = Annotated[str, Field(max_length=100)]
Text = Annotated[str, Field(max_length=10_000)]
Language = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")]


class Strict(BaseModel):
    """A request: a field the API does not know is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Page(Strict):
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, pattern=r"^[io][0-9]{1,9}$",
                               description="`next` of the previous page")


# ---- contacts ------------------------------------------------------------------------------
class PhoneOut(BaseModel):
    e164: str
    type: PhoneType
    label: str
    is_primary: bool


class EmailOut(BaseModel):
    address: str
    label: str
    is_primary: bool


class ContactOut(BaseModel):
    id: int
    first_name: str
    last_name: str
    organisation_id: int | None
    kind: PartyKind | None
    job_title: str
    language: str
    owner_id: int | None
    notes: str
    custom: dict[str, Any]
    phones: list[PhoneOut]
    emails: list[EmailOut]
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Send it back as If-Match (the ETag) to edit.")


class ContactSummary(BaseModel):
    id: int
    name: str
    organisation: str | None
    phone: str | None
    email: str | None
    owner_id: int | None


class ContactQuery(Page):
    q: str = Field("", max_length=200, description="Search as you type: names, numbers, …")
    tag: str = Field("", max_length=100)
    owner_id: Id | None = None


class ContactPage(BaseModel):
    items: list[ContactSummary]
    next: str | None


class ContactCreate(Strict):
    first_name: Name = ""
    last_name: Name = ""
    organisation_id: Id | None = None
    kind: PartyKind | None = None
    job_title: Annotated[str, Field(max_length=200)] = ""
    language: Language = "en"
    owner_id: Id | None = None
    notes: Text = ""
    phones: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list,
                                                              max_length=10)
    emails: list[Annotated[str, Field(max_length=320)]] = Field(default_factory=list,
                                                               max_length=10)
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=20)


class ContactPatch(Strict):
    """Only the fields given change; send If-Match with the `updated_at` you read."""

    first_name: Name | None = None
    last_name: Name | None = None
    organisation_id: Id | None = None
    kind: PartyKind | None = None
    job_title: Annotated[str, Field(max_length=200)] | None = None
    language: Language | None = None
    owner_id: Id | None = None
    notes: Text | None = None


# ---- organisations, products ------------------------------------------------------------------
class OrganisationOut(BaseModel):
    id: int
    name: str
    kind: PartyKind
    vat_number: str | None
    website: str | None
    owner_id: int | None
    notes: str


class OrganisationQuery(Page):
    kind: PartyKind | None = None


class OrganisationPage(BaseModel):
    items: list[OrganisationOut]
    next: str | None


class OrganisationCreate(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: PartyKind
    vat_number: Annotated[str, Field(max_length=64)] | None = None
    website: Annotated[str, Field(max_length=300)] | None = None
    notes: Text = ""


class ProductOut(BaseModel):
    id: int
    sku: str
    name: str
    kind: ProductKind
    description: str
    unit_price: Decimal
    currency: str
    active: bool


class ProductPage(BaseModel):
    items: list[ProductOut]
    next: str | None


class ProductCreate(Strict):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: ProductKind
    unit_price: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    description: Text = ""


# ---- timeline, documents ----------------------------------------------------------------------
class TimelineQuery(Strict):
    limit: int = Field(50, ge=1, le=200)
    before: datetime | None = Field(None, description="Entries older than this (paging)")


class TimelineItem(BaseModel):
    at: datetime
    kind: str
    id: int
    title: str
    detail: dict[str, Any]


class Timeline(BaseModel):
    items: list[TimelineItem]


class DocumentOut(BaseModel):
    id: int
    kind: DocumentKind
    title: str
    mime_type: str
    size_bytes: int
    created_at: datetime


class Documents(BaseModel):
    items: list[DocumentOut]


# ---- tasks --------------------------------------------------------------------------------------
class TaskOut(BaseModel):
    id: int
    title: str
    description: str
    contact_id: int | None
    assignee_id: int | None
    team: str | None
    status: TaskStatus
    priority: TaskPriority
    due_at: datetime | None


class TaskQuery(Strict):
    assignee: Literal["me", "all"] = "me"
    team: Annotated[str, Field(max_length=64)] | None = None
    limit: int = Field(100, ge=1, le=500)


class Tasks(BaseModel):
    items: list[TaskOut]


class TaskCreate(Strict):
    title: Annotated[str, Field(min_length=1, max_length=300)]
    description: Text = ""
    contact_id: Id | None = None
    due_at: datetime | None = None
    priority: TaskPriority = TaskPriority.NORMAL
    assignee_id: Id | None = Field(None, description="None: the assignment policy chooses")


# ---- messages -----------------------------------------------------------------------------------
class MessageCreate(Strict):
    """A text as given, or a template rendered for the contact."""

    channel: Literal[Channel.SMS, Channel.EMAIL]
    to: Annotated[str, Field(min_length=3, max_length=320)]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=128,
                                          description="The same key never sends twice")]
    contact_id: Id | None = None
    body: Annotated[str, Field(max_length=20_000)] = ""
    subject: Annotated[str, Field(max_length=300)] = ""
    template: Annotated[str, Field(max_length=100)] | None = None


class MessageQueued(BaseModel):
    id: int


# ---- campaigns, agents, me --------------------------------------------------------------
class CampaignOut(BaseModel):
    id: int
    name: str
    mode: CampaignMode
    status: CampaignStatus
    script: str
    dispositions: list[str]


class Campaigns(BaseModel):
    items: list[CampaignOut]


class CampaignPatch(Strict):
    """What agents see of a campaign: its call script and its disposition buttons."""

    script: Annotated[str, Field(max_length=20_000, description=(
        "Jinja text over the contact's fields: {{ first_name }}, {{ company }}, …"))] | None = None
    dispositions: Annotated[list[DispositionName], Field(min_length=1, max_length=8)] | None = None


class CampaignState(BaseModel):
    id: int
    status: CampaignStatus


class AgentOut(BaseModel):
    username: str
    campaign_id: int
    state: AgentState
    seconds_in_state: float


class Agents(BaseModel):
    items: list[AgentOut]


class MeOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
