"""A realistic sample business for the demo: people in several countries and time zones,
buyers and suppliers, products, two weeks of interactions, open tasks and a campaign.

Seeded, so two demo installations look the same; written once, on the first start.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import phonenumbers
from phonenumbers import PhoneNumberType
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.auth.service import hash_password
from contactd.db.models import (
    Campaign,
    Consent,
    Contact,
    ContactEmail,
    ContactPhone,
    DoNotCall,
    Interaction,
    Lead,
    LeadList,
    Organisation,
    Product,
    ProductLink,
    Tag,
    Task,
    User,
)
from contactd.db.session import Database
from contactd.demo.history import seed_agent_time, seed_campaign_results, seed_messages
from contactd.enums import (
    CampaignMode,
    CampaignStatus,
    Channel,
    ConsentStatus,
    Direction,
    InteractionKind,
    PartyKind,
    ProductKind,
    ProductRelation,
    Role,
    TaskPriority,
    TaskSource,
    TaskStatus,
)
from contactd.errors import ValidationError
from contactd.phones import PhoneInfo, parse_phone

SEED = 20261129
HISTORY_DAYS = 14
DEMO_CAMPAIGN = "Spring renewals"
PREVIEW_CAMPAIGN = "Customer callbacks"  # preview mode: the real agent picks and dials
PLAYER = "anna"  # the agent login the demo prints for a person; never simulated


@dataclass(frozen=True)
class Country:
    region: str
    language: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    cities: tuple[str, ...]
    company_suffix: str


COUNTRIES = (
    Country("US", "en", ("James", "Mary", "Robert", "Linda", "Michael", "Patricia", "David",
            "Jennifer", "Carlos", "Aisha"), ("Smith", "Johnson", "Brown", "Garcia", "Miller",
            "Davis", "Martinez", "Wilson", "Lee", "Walker"),
            ("New York", "Chicago", "Denver", "Los Angeles", "Phoenix"), "Inc."),
    Country("GB", "en", ("Oliver", "Amelia", "Harry", "Isla", "George", "Emily", "Jack", "Ava"),
            ("Taylor", "Evans", "Thomas", "Roberts", "Wright", "Hughes", "Clarke", "Patel"),
            ("London", "Leeds", "Bristol", "Glasgow"), "Ltd"),
    Country("DE", "de", ("Lukas", "Anna", "Jonas", "Lea", "Felix", "Marie", "Jürgen", "Sören"),
            ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Wagner", "Koch"),
            ("Berlin", "München", "Hamburg", "Köln"), "GmbH"),
    Country("FR", "fr", ("Lucas", "Chloé", "Hugo", "Léa", "Louis", "Manon", "Théo", "Camille"),
            ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"),
            ("Paris", "Lyon", "Marseille", "Toulouse"), "SARL"),
    Country("ES", "es", ("Hugo", "Lucía", "Martín", "Sofía", "Pablo", "Paula", "Álvaro", "Inés"),
            ("García", "Fernández", "González", "Rodríguez", "López", "Sánchez", "Pérez"),
            ("Madrid", "Barcelona", "Valencia", "Sevilla"), "S.L."),
    Country("AU", "en", ("Jack", "Charlotte", "William", "Olivia", "Noah", "Mia", "Lachlan"),
            ("Smith", "Jones", "Williams", "Brown", "Wilson", "Nguyen", "Kelly"),
            ("Sydney", "Melbourne", "Perth", "Brisbane"), "Pty Ltd"),
    Country("BR", "pt", ("João", "Maria", "Pedro", "Ana", "Gabriel", "Júlia", "Rafael"),
            ("Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira", "Costa"),
            ("São Paulo", "Rio de Janeiro", "Manaus", "Recife"), "Ltda."),
    Country("CA", "en", ("Liam", "Emma", "Ethan", "Chloé", "Noah", "Zoe", "Benjamin"),
            ("Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Martin", "MacDonald"),
            ("Toronto", "Montréal", "Vancouver", "Calgary"), "Corp."),
    Country("KR", "ko", ("Minjun", "Seoyeon", "Jiho", "Haeun", "Doyun", "Jiwoo"),
            ("Kim", "Lee", "Park", "Choi", "Jung", "Kang"),
            ("Seoul", "Busan", "Incheon", "Daegu"), "Co., Ltd."),
)

COMPANY_WORDS = ("Northwind", "Bluebird", "Atlas", "Granite", "Silverline", "Evergreen", "Orbit",
                 "Harbor", "Summit", "Pioneer", "Crescent", "Meridian", "Lumen", "Vertex",
                 "Juniper", "Falcon", "Riverside", "Keystone", "Aurora", "Cobalt")
COMPANY_TRADES = ("Logistics", "Foods", "Engineering", "Retail", "Health", "Media", "Energy",
                  "Textiles", "Software", "Build")

PRODUCTS = (
    ("SUP-BASIC", "Support plan Basic", ProductKind.SERVICE, "29.00"),
    ("SUP-PRO", "Support plan Pro", ProductKind.SERVICE, "99.00"),
    ("SUP-247", "Support 24/7", ProductKind.SERVICE, "349.00"),
    ("INST-ONSITE", "On-site installation", ProductKind.SERVICE, "650.00"),
    ("TRAIN-DAY", "Training day", ProductKind.SERVICE, "890.00"),
    ("HS-200", "Headset HS-200", ProductKind.PRODUCT, "79.90"),
    ("PH-DESK", "Desk phone T4", ProductKind.PRODUCT, "149.00"),
    ("GW-4FXO", "Analog gateway 4 FXO", ProductKind.PRODUCT, "420.00"),
    ("LIC-SEAT", "Agent seat licence (month)", ProductKind.SERVICE, "35.00"),
    ("SIM-DATA", "Data SIM 10 GB", ProductKind.PRODUCT, "12.50"),
    ("CONS-HOUR", "Consulting hour", ProductKind.SERVICE, "120.00"),
    ("CABLE-CAT6", "Cat6 cable 5 m", ProductKind.PRODUCT, "6.90"),
)

AGENTS = (
    ("sofia", "Sofia Romero", Role.SUPERVISOR, "sales", ["es", "en"]),
    ("marcus", "Marcus Webb", Role.SUPERVISOR, "support", ["en"]),
    ("anna", "Anna Keller", Role.AGENT, "sales", ["de", "en"]),
    ("tom", "Tom Becker", Role.AGENT, "sales", ["en"]),
    ("lea", "Léa Moreau", Role.AGENT, "sales", ["fr", "en"]),
    ("raj", "Raj Mehta", Role.AGENT, "support", ["en"]),
    ("joao", "João Lima", Role.AGENT, "support", ["pt", "es"]),
    ("emma", "Emma Clarke", Role.AGENT, "support", ["en"]),
)

TAGS = ("vip", "newsletter", "trade-fair-2026", "late-payer", "reseller", "prospect")
OUTCOMES_CALL = ("answered", "answered", "answered", "no_answer", "busy", "voicemail")
NOTES = (
    "Asked for a quote on {product}.",
    "Called about an invoice; resolved on the call.",
    "Wants a callback next week about {product}.",
    "Complained about delivery time; offered a discount.",
    "Interested in upgrading to {product}.",
    "Confirmed the installation date.",
)
IVR_TRANSCRIPTS = (
    "I would like to talk about my invoice",
    "my headset is not working",
    "I want to order more seat licences",
    "please call me back tomorrow morning",
)


def _numbers(rng: random.Random, region: str, kind: int) -> PhoneInfo | None:
    """A valid, realistic-looking number built from the region's example number."""
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        return None
    national = str(example.national_number)
    for _ in range(30):
        tail = "".join(rng.choice("0123456789") for _ in range(4))
        candidate = f"+{example.country_code}{national[:-4]}{tail}"
        try:
            return parse_phone(candidate)
        except ValidationError:
            continue
    return None


def _ascii(text: str) -> str:
    """Lower-case ASCII for e-mail addresses and host names: "Jürgen" -> "jurgen"."""
    decomposed = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


async def demo_exists(db: Database) -> bool:
    async with db.session() as session:
        return bool(await session.scalar(select(func.count()).select_from(Contact)))


async def create_demo_data(db: Database, admin_password: str, contacts: int = 320) -> None:
    """Write the whole demo set in one transaction: all of it or nothing. Documents (PDF
    files, slow to lay out) come later: contactd.demo.history.seed_documents."""
    rng = random.Random(SEED)
    now = datetime.now(UTC).replace(microsecond=0)
    async with db.transaction() as session:
        users = _users(session, admin_password)
        await session.flush()
        products = [
            Product(sku=sku, name=name, kind=kind, unit_price=Decimal(price), currency="EUR")
            for sku, name, kind, price in PRODUCTS
        ]
        tags = [Tag(name=name) for name in TAGS]
        session.add_all([*products, *tags])
        orgs = _organisations(rng, users)
        session.add_all(orgs)
        await session.flush()
        people = _contacts(rng, contacts, orgs, users, tags)
        session.add_all(people)
        await session.flush()
        _links(session, rng, products, orgs)
        _consents(session, rng, people, now)
        await _history(session, rng, people, users, products, now)
        await seed_campaign_results(session, rng, people, now, HISTORY_DAYS)
        seed_messages(session, rng, people, now, HISTORY_DAYS)


def _users(session: AsyncSession, admin_password: str) -> list[User]:
    # One hash for everyone (they share the demo password): argon2 is slow on purpose.
    password_hash = hash_password(admin_password)
    admin = User(username="admin", display_name="Administrator", role=Role.ADMIN,
                 password_hash=password_hash)
    staff = [
        User(username=login, display_name=name, role=role, team=team, skills=langs,
             password_hash=password_hash, extension=f"PJSIP/{login}")
        for login, name, role, team, langs in AGENTS
    ]
    session.add(admin)
    session.add_all(staff)
    return staff


def _organisations(rng: random.Random, users: list[User]) -> list[Organisation]:
    orgs = []
    kinds = [PartyKind.BUYER] * 40 + [PartyKind.SUPPLIER] * 10 + [PartyKind.PARTNER] * 5
    used: set[str] = set()
    for kind in kinds:
        country = rng.choice(COUNTRIES)
        while True:
            name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_TRADES)}"
            if name not in used:
                used.add(name)
                break
        orgs.append(Organisation(
            name=f"{name} {country.company_suffix}", kind=kind,
            website=f"https://www.{_ascii(name).replace(' ', '-')}.example",
            owner_id=rng.choice(users).id,
            custom={"country": country.region},
        ))
    return orgs


def _contacts(rng: random.Random, count: int, orgs: list[Organisation], users: list[User],
              tags: list[Tag]) -> list[Contact]:
    people = []
    seen_numbers: set[str] = set()
    for index in range(count):
        country = COUNTRIES[index % len(COUNTRIES)]
        org_candidates = [o for o in orgs if o.custom.get("country") == country.region] or orgs
        first, last = rng.choice(country.first_names), rng.choice(country.last_names)
        person = Contact(
            first_name=first, last_name=last, language=country.language,
            organisation_id=rng.choice(org_candidates).id if rng.random() < 0.8 else None,
            job_title=rng.choice(("Buyer", "CEO", "Office manager", "IT lead", "Accountant", "")),
            owner_id=rng.choice(users).id,
            custom={"city": rng.choice(country.cities)},
        )
        kinds = ((PhoneNumberType.MOBILE, "mobile"), (PhoneNumberType.FIXED_LINE, "work"))
        for kind, label in kinds:
            if label == "work" and rng.random() < 0.5:
                continue
            info = _numbers(rng, country.region, kind)
            if info is None or info.e164 in seen_numbers:
                continue
            seen_numbers.add(info.e164)
            person.phones.append(ContactPhone(
                e164=info.e164, type=info.type, label=label, region=info.region,
                time_zones=" ".join(info.time_zones), is_primary=not person.phones,
            ))
        address = f"{_ascii(first)}.{_ascii(last)}{index}@example.{country.region.lower()}"
        person.emails.append(ContactEmail(address=address, label="work", is_primary=True))
        person.tags = rng.sample(tags, k=rng.choice((0, 0, 1, 1, 2)))
        people.append(person)
    return people


def _links(session: AsyncSession, rng: random.Random, products: list[Product],
           orgs: list[Organisation]) -> None:
    for org in orgs:
        supplier = org.kind is PartyKind.SUPPLIER
        relation = ProductRelation.SUPPLIES if supplier else ProductRelation.BUYS
        for product in rng.sample(products, k=rng.randint(1, 3)):
            session.add(ProductLink(product_id=product.id, organisation_id=org.id,
                                    relation=relation))


def _consents(session: AsyncSession, rng: random.Random, people: list[Contact],
              now: datetime) -> None:
    for person in people:
        if rng.random() < 0.6:
            session.add(Consent(contact_id=person.id, channel=Channel.SMS,
                                status=ConsentStatus.GRANTED, source="web form",
                                recorded_at=now - timedelta(days=rng.randint(30, 400))))
        if rng.random() < 0.04 and person.phones:
            session.add(DoNotCall(e164=person.phones[0].e164, reason="asked not to be called",
                                  source="agent"))


async def _history(session: AsyncSession, rng: random.Random, people: list[Contact],
                   users: list[User], products: list[Product], now: datetime) -> None:
    agents = [u for u in users if u.role is Role.AGENT]
    interactions = []
    for person in people:
        for _ in range(rng.randint(1, 6)):  # two weeks of contact, not a lifetime
            started = now - timedelta(days=rng.uniform(0, HISTORY_DAYS),
                                      minutes=rng.randint(0, 600))
            kind = rng.choice((InteractionKind.CALL, InteractionKind.CALL, InteractionKind.EMAIL,
                               InteractionKind.SMS, InteractionKind.NOTE,
                               InteractionKind.IVR_SESSION))
            agent = rng.choice(agents)
            product = rng.choice(products).name
            row = Interaction(contact_id=person.id, kind=kind, started_at=started,
                              user_id=agent.id, direction=rng.choice(
                                  (Direction.INBOUND, Direction.OUTBOUND)))
            if kind is InteractionKind.CALL:
                row.channel = Channel.CALL
                row.outcome = rng.choice(OUTCOMES_CALL)
                talk = rng.randint(40, 900) if row.outcome == "answered" else 0
                row.ended_at = started + timedelta(seconds=talk + rng.randint(5, 25))
                row.body = rng.choice(NOTES).format(product=product) if talk else ""
                row.remote_address = person.phones[0].e164 if person.phones else ""
            elif kind is InteractionKind.IVR_SESSION:
                row.channel, row.direction = Channel.CALL, Direction.INBOUND
                row.transcript = rng.choice(IVR_TRANSCRIPTS)
                row.outcome = rng.choice(("queued_to_agent", "callback_scheduled", "self_served"))
                row.ended_at = started + timedelta(seconds=rng.randint(30, 150))
            elif kind is InteractionKind.EMAIL:
                row.channel = Channel.EMAIL
                row.subject = f"About {product}"
                row.body = rng.choice(NOTES).format(product=product)
                row.outcome = "delivered"
            elif kind is InteractionKind.SMS:
                row.channel = Channel.SMS
                row.body = f"Reminder: your {product} appointment is confirmed."
                row.outcome = "delivered"
            else:
                row.channel, row.direction = Channel.NONE, Direction.INTERNAL
                row.body = rng.choice(NOTES).format(product=product)
            interactions.append(row)
    session.add_all(interactions)
    await session.flush()
    # A generator of its own: the rest of the demo's data stays what it was.
    seed_agent_time(session, random.Random(1),
                    [i for i in interactions if i.kind is InteractionKind.CALL])
    for row in rng.sample(interactions, k=min(140, len(interactions))):
        status = rng.choice((TaskStatus.OPEN, TaskStatus.OPEN, TaskStatus.IN_PROGRESS,
                             TaskStatus.DONE))
        # Open work is due from the next hour on, so nothing is escalated in bulk at start;
        # finished work was due in the past. The watcher escalates the odd one later on.
        if status is TaskStatus.DONE:
            due = now - timedelta(days=rng.randint(1, HISTORY_DAYS), hours=rng.randint(0, 8))
        else:
            due = now + timedelta(hours=rng.randint(1, 8), days=rng.randint(0, HISTORY_DAYS))
        session.add(Task(
            title=rng.choice(("Call back about quote", "Send offer", "Check invoice",
                              "Schedule installation", "Follow up on complaint")),
            contact_id=row.contact_id, interaction_id=row.id, assignee_id=row.user_id,
            status=status, due_at=due,
            priority=rng.choice(list(TaskPriority)),
            source=rng.choice((TaskSource.MANUAL, TaskSource.IVR_INTAKE, TaskSource.CALLBACK,
                               TaskSource.MISSED_CALL)),
            completed_at=due if status is TaskStatus.DONE else None,
        ))
    # Agents are handed calls directly (no Asterisk queue), as the simulated agents expect.
    campaign = Campaign(name=DEMO_CAMPAIGN, mode=CampaignMode.PROGRESSIVE,
                        status=CampaignStatus.PAUSED, caller_id="+15550100100",
                        max_attempts=3,
                        retry_rules={"busy": 900, "no_answer": 7200, "machine": 86400},
                        fallback_channel=Channel.SMS)
    session.add(campaign)
    await session.flush()
    leads = LeadList(campaign_id=campaign.id, name="Renewals due in 30 days")
    session.add(leads)
    await session.flush()
    for person in rng.sample(people, k=100):
        if person.phones:
            session.add(Lead(campaign_id=campaign.id, lead_list_id=leads.id,
                             contact_id=person.id, phone_e164=person.phones[0].e164,
                             priority=rng.randint(0, 3)))
    # A preview campaign for the person who signs in as PLAYER: they see the next lead's
    # card, then dial it or skip it (the simulated agents work the progressive one).
    preview = Campaign(name=PREVIEW_CAMPAIGN, mode=CampaignMode.PREVIEW,
                       status=CampaignStatus.RUNNING, caller_id="+15550100100",
                       max_attempts=3, retry_rules={"busy": 900, "no_answer": 3600})
    session.add(preview)
    await session.flush()
    callbacks = LeadList(campaign_id=preview.id, name="Asked to be called back")
    session.add(callbacks)
    await session.flush()
    for person in rng.sample(people, k=25):
        if person.phones:
            session.add(Lead(campaign_id=preview.id, lead_list_id=callbacks.id,
                             contact_id=person.id, phone_e164=person.phones[0].e164,
                             priority=rng.randint(0, 3)))
