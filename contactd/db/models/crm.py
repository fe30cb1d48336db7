"""Customer records: organisations, contacts, their numbers and addresses, tags, custom fields,
products and who buys or supplies them, consent, interactions, tasks and documents."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from contactd.db.base import Base, Timestamps, str_enum, utcnow
from contactd.enums import (
    Channel,
    ConsentStatus,
    CustomFieldEntity,
    CustomFieldType,
    Direction,
    DocumentKind,
    InteractionKind,
    PartyKind,
    PhoneType,
    ProductKind,
    ProductRelation,
    TaskPriority,
    TaskSource,
    TaskStatus,
)

contact_tags = Table(
    "contact_tags",
    Base.metadata,
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_contact_tags_tag", "tag_id"),
)


class Organisation(Timestamps, Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[PartyKind] = mapped_column(str_enum(PartyKind), index=True)
    vat_number: Mapped[str | None] = mapped_column(String(64))
    website: Mapped[str | None] = mapped_column(String(300))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    notes: Mapped[str] = mapped_column(Text, default="")
    custom: Mapped[dict[str, Any]] = mapped_column(default=dict)

    contacts: Mapped[list[Contact]] = relationship(back_populates="organisation")


class Contact(Timestamps, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_name_key", "name_key", "id"),
        # The contact list in name order: an index walk that stops at the page, no sort.
        Index("ix_contacts_name_order", "last_name", "first_name", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="", index=True)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    # A person's own classification; None means "as their organisation".
    kind: Mapped[PartyKind | None] = mapped_column(str_enum(PartyKind))
    job_title: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(16), default="en")
    # A zone the contact told us; it wins over the zone guessed from a number.
    timezone: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    preferred_channel: Mapped[Channel | None] = mapped_column(str_enum(Channel))
    notes: Mapped[str] = mapped_column(Text, default="")
    custom: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Set when this record was merged into another; its interactions moved there.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    # What the full-text index reads (contactd.crm.fts keeps contacts_fts in step by
    # triggers): the person's name and title, ranked first; then company, numbers in the forms
    # people type them, e-mails and notes.
    search_name: Mapped[str] = mapped_column(Text, default="")
    search_text: Mapped[str] = mapped_column(Text, default="")
    # searchtext.name_key: surname and first name folded, for prefix search in name order
    # (byte order on both databases: "C" collation on PostgreSQL).
    name_key: Mapped[str] = mapped_column(
        Text().with_variant(Text(collation="C"), "postgresql"), default="", server_default=""
    )
    # Bumped by every ORM update; an edit form carries it, so a stale edit is refused (the
    # UPDATE matches the version it read) rather than overwriting someone else's change.
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads this

    organisation: Mapped[Organisation | None] = relationship(back_populates="contacts")
    # In the order they were entered: the first is the primary one a form or card shows.
    phones: Mapped[list[ContactPhone]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", order_by="ContactPhone.id"
    )
    emails: Mapped[list[ContactEmail]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", order_by="ContactEmail.id"
    )
    tags: Mapped[list[Tag]] = relationship(secondary=contact_tags, order_by="Tag.name")

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ContactPhone(Base):
    __tablename__ = "contact_phones"
    __table_args__ = (UniqueConstraint("contact_id", "e164"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(String(20), index=True)
    type: Mapped[PhoneType] = mapped_column(str_enum(PhoneType))
    label: Mapped[str] = mapped_column(String(32), default="")
    region: Mapped[str | None] = mapped_column(String(2))
    # Space-separated IANA zones phonenumbers maps this number to (several for large countries).
    time_zones: Mapped[str] = mapped_column(String(400), default="")
    is_primary: Mapped[bool] = mapped_column(default=False)

    contact: Mapped[Contact] = relationship(back_populates="phones")


class ContactEmail(Base):
    __tablename__ = "contact_emails"
    __table_args__ = (UniqueConstraint("contact_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320), index=True)  # stored lower-case
    label: Mapped[str] = mapped_column(String(32), default="")
    is_primary: Mapped[bool] = mapped_column(default=False)

    contact: Mapped[Contact] = relationship(back_populates="emails")


class Address(Base):
    __tablename__ = "addresses"
    __table_args__ = (
        CheckConstraint(
            "(contact_id IS NULL) <> (organisation_id IS NULL)", name="one_owner"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(32), default="")
    street: Mapped[str] = mapped_column(String(300), default="")
    city: Mapped[str] = mapped_column(String(120), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    region: Mapped[str] = mapped_column(String(120), default="")
    country: Mapped[str] = mapped_column(String(2), default="")


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    color: Mapped[str] = mapped_column(String(16), default="")


class Segment(Timestamps, Base):
    """A saved filter over contacts (tags, owner, custom fields), evaluated when used."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CustomFieldDef(Base):
    __tablename__ = "custom_field_defs"
    __table_args__ = (UniqueConstraint("entity", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[CustomFieldEntity] = mapped_column(str_enum(CustomFieldEntity))
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[CustomFieldType] = mapped_column(str_enum(CustomFieldType))
    choices: Mapped[list[str]] = mapped_column(default=list)
    required: Mapped[bool] = mapped_column(default=False)


class Product(Timestamps, Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ProductKind] = mapped_column(str_enum(ProductKind))
    description: Mapped[str] = mapped_column(Text, default="")
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    active: Mapped[bool] = mapped_column(default=True)


class ProductLink(Base):
    """Who buys or supplies what: a contact or an organisation, never both."""

    __tablename__ = "product_links"
    __table_args__ = (
        CheckConstraint(
            "(contact_id IS NULL) <> (organisation_id IS NULL)", name="one_party"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    relation: Mapped[ProductRelation] = mapped_column(str_enum(ProductRelation))
    since: Mapped[date | None]


class Consent(Base):
    """Consent history per contact and channel; the newest row per channel is in force."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_contact_channel", "contact_id", "channel", "recorded_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    status: Mapped[ConsentStatus] = mapped_column(str_enum(ConsentStatus))
    source: Mapped[str] = mapped_column(String(64), default="")  # e.g. "sms STOP", "web form"
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class DoNotCall(Base):
    """A number never to dial: globally (campaign_id NULL) or for one campaign."""

    __tablename__ = "dnc_entries"
    __table_args__ = (UniqueConstraint("e164", "campaign_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    e164: Mapped[str] = mapped_column(String(20), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Interaction(Base):
    """Every contact with a customer, whatever the channel: the timeline's rows."""

    __tablename__ = "interactions"
    __table_args__ = (
        Index("ix_interactions_contact_started", "contact_id", "started_at"),
        # The period reports count index ranges, never reading the table (crm/reports.py):
        # per day on the first, per channel/kind/outcome on the second.
        Index("ix_interactions_report", "started_at", "channel", "kind", "outcome"),
        Index("ix_interactions_mix", "channel", "kind", "outcome", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    kind: Mapped[InteractionKind] = mapped_column(str_enum(InteractionKind))
    direction: Mapped[Direction] = mapped_column(str_enum(Direction))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(40), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    transcript: Mapped[str] = mapped_column(Text, default="")
    recording_ref: Mapped[str | None] = mapped_column(String(300))
    # The remote party's address as seen: caller ID, SMS source, email sender.
    remote_address: Mapped[str] = mapped_column(String(320), default="")
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class InteractionHour(Base):
    """The reports' hourly rollup of interactions (contactd.crm.report_hours keeps it by
    triggers): counts and talk seconds per hour ("YYYY-MM-DD HH", UTC), channel, kind,
    direction, outcome, campaign and agent (0: none)."""

    __tablename__ = "interaction_hours"

    hour: Mapped[str] = mapped_column(String(13), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    direction: Mapped[str] = mapped_column(String(20), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(40), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int]
    talk_s: Mapped[float]


class ChannelDecision(Base):
    """Why a contact was called, texted, emailed or left alone at a given moment."""

    __tablename__ = "channel_decisions"
    __table_args__ = (Index("ix_channel_decisions_contact", "contact_id", "decided_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    reason: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Task(Timestamps, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_assignee_status_due", "assignee_id", "status", "due_at"),
        Index("ix_tasks_contact", "contact_id"),
        Index("ix_tasks_status_due", "status", "due_at"),
        Index("ix_tasks_team_status_due", "team", "status", "due_at"),
        # Round-robin's "last assignee of this team" without sorting the team's tasks.
        Index("ix_tasks_team_id", "team", "id"),
        # The tasks report: opened and closed in a period per person, from the index alone.
        Index("ix_tasks_created_assignee", "created_at", "assignee_id"),
        Index("ix_tasks_completed_assignee", "completed_at", "assignee_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL")
    )
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team: Mapped[str | None] = mapped_column(String(64))
    skill: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[TaskStatus] = mapped_column(str_enum(TaskStatus), default=TaskStatus.OPEN)
    priority: Mapped[TaskPriority] = mapped_column(
        str_enum(TaskPriority), default=TaskPriority.NORMAL
    )
    source: Mapped[TaskSource] = mapped_column(str_enum(TaskSource), default=TaskSource.MANUAL)
    due_at: Mapped[datetime | None]
    remind_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class TaskComment(Base):
    """A note on a task by the people working it, oldest first on the task's page."""

    __tablename__ = "task_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentTemplate(Timestamps, Base):
    __tablename__ = "document_templates"
    __table_args__ = (UniqueConstraint("name", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[DocumentKind] = mapped_column(str_enum(DocumentKind))
    language: Mapped[str] = mapped_column(String(16), default="en")
    body: Mapped[str] = mapped_column(Text)  # Jinja2 source


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("document_templates.id", ondelete="SET NULL")
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[DocumentKind] = mapped_column(str_enum(DocumentKind))
    title: Mapped[str] = mapped_column(String(300))
    storage_path: Mapped[str] = mapped_column(String(500))  # relative to the data folder
    mime_type: Mapped[str] = mapped_column(String(100), default="application/pdf")
    size_bytes: Mapped[int] = mapped_column(default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
