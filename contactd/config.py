"""Settings: one TOML file plus CONTACTD_* environment overrides, validated once at start.

An environment variable `CONTACTD_<SECTION>__<KEY>` (double underscore between levels)
overrides `[section] key` in the file, so secrets can stay out of the file entirely.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from contactd.errors import ConfigError

ENV_PREFIX = "CONTACTD_"
Port = Annotated[int, Field(ge=1, le=65535)]


def _host_node() -> str:
    """The host's name, cut to what a node name may hold."""
    import socket

    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64]
    return name or "contactd"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneralSettings(_Section):
    # Where the systemd unit's StateDirectory is: a command run without --config opens the
    # daemon's database, not a new ./data/contactd.db wherever the shell happens to be.
    data_dir: Path = Path("/var/lib/contactd")
    timezone: str = "UTC"
    default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "text"
    # This daemon's name on the calls it dials and the leads it claims. Daemons sharing one
    # PostgreSQL database must have different names: each reconciles only its own calls.
    node: str = Field(default_factory=lambda: _host_node(), pattern=r"^[A-Za-z0-9._-]{1,64}$")
    # Several daemons on one PostgreSQL: a daemon silent this long is taken for gone, and its
    # agents leave the other daemons' floors (it refreshes its agents' rows every third of it).
    agent_state_expiry_s: float = Field(default=15.0, ge=1.0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class DatabaseSettings(_Section):
    # Empty means SQLite in general.data_dir; see Settings.database_url.
    url: SecretStr = SecretStr("")
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _supported_driver(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if raw and not re.match(r"^(sqlite\+aiosqlite|postgresql\+asyncpg)://", raw):
            raise ValueError(
                "expected a URL starting with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value


class WebSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 8080
    secret_key: SecretStr = SecretStr("")
    languages: tuple[str, ...] = ("en", "ru", "ny", "de")
    # Sessions end after this long without a request, and in any case this long after sign-in.
    session_idle_minutes: int = Field(default=30, gt=0)
    session_absolute_hours: int = Field(default=12, gt=0)
    # Pages reuse who is signed in and the list of users for this long; a sign-out or change
    # made on another daemon or by the CLI reaches this one within it (0: read every time).
    identity_reuse_s: float = Field(default=2.0, ge=0, le=60)
    # The session cookie is marked Secure when the request came over TLS, or always when set
    # (behind a TLS reverse proxy the panel itself sees plain HTTP).
    cookie_secure: bool = False
    # Sign-in throttling: after this many failures within the window, for one account or from
    # one address, further attempts are refused until the window has passed.
    login_max_failures: int = Field(default=5, gt=0)
    login_window_s: float = Field(default=300.0, gt=0)
    # Teams: an agent whose user has a team sees only contacts owned by their team's members,
    # those contacts' tasks and documents, and tasks of their team (contactd/web/access.py).
    team_visibility: bool = False
    # The live floor holds each inbound queue to its own service_level_s; this is the target
    # for a queue the floor hears of without one (another daemon's, say).
    floor_service_level_s: float = Field(default=20.0, gt=0)


class AmiSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 5038
    username: str = "contactd"
    secret: SecretStr = SecretStr("")
    ping_interval_s: float = Field(default=20.0, gt=0)
    action_timeout_s: float = Field(default=10.0, gt=0)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    # AMI event classes to receive; "dialplan" (Newexten/VarSet) is left out on purpose:
    # several per call, none needed since the attempt id is the Linkedid of the call.
    events: str = "system,call,user,agent"
    # Also whitelist, per session, exactly the event names contactd subscribed to.
    filter_events: bool = True

    @model_validator(mode="after")
    def _backoff_order(self) -> AmiSettings:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


# A dial string as Dial()/Originate take it: TECH/resource, nothing the dialplan would split.
_DIAL_STRING = re.compile(r"[A-Za-z0-9_\-]+/[A-Za-z0-9_.@:+\-/]+")


class AsteriskSettings(_Section):
    """Dialplan contexts contactd originates into; they must exist in extensions.conf."""

    outbound_context: str = "contactd-outbound"
    agent_context: str = "contactd-agent"
    trunk_dial_template: str = "PJSIP/{number}@trunk"

    @field_validator("trunk_dial_template")
    @classmethod
    def _trunk_template(cls, value: str) -> str:
        # Every campaign call dials this: a typo must stop the start, not fail each call.
        if "{number}" not in value:
            raise ValueError("must contain {number}, where the lead's E.164 number goes")
        try:
            sample = value.format(number="+15550100")
        except (KeyError, IndexError, ValueError):
            raise ValueError("only {number} may be in braces") from None
        if not _DIAL_STRING.fullmatch(sample):
            raise ValueError("must be TECH/resource, e.g. PJSIP/{number}@trunk (letters, "
                             "digits and _ . @ : + - / only)")
        return value


class AudioSocketSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 9092
    # Asterisk sends 320-byte frames; anything far larger is a broken stream, not audio.
    max_frame_bytes: int = Field(default=2048, ge=320, le=65535)
    read_timeout_s: float = Field(default=10.0, gt=0)  # a live call sends a frame every 20 ms
    write_timeout_s: float = Field(default=2.0, gt=0)
    queue_frames: int = Field(default=100, ge=1)  # inbound events buffered per call (2 s)


class SpeechSettings(_Section):
    # Path to an unpacked Vosk model folder; empty means DTMF-only IVR.
    vosk_model_path: Path | None = None
    tts_voice: str = ""
    tts_language: str = "en"
    # A shipped flow name ("intake", "survey") or the path of a flow TOML file.
    flow: str = "intake"
    prompt_cache_dir: Path | None = None  # default: <data_dir>/prompts
    asr_workers: int = Field(default=2, ge=1, le=64)  # real-time grammar decoding threads
    transcribe_workers: int = Field(default=2, ge=1, le=64)  # free-form answers, afterwards
    min_confidence: float = Field(default=0.7, ge=0.0, le=1.0)  # below: re-prompt
    silence_ms: int = Field(default=400, ge=100, le=3000)  # end of speech
    no_input_s: float = Field(default=5.0, gt=0)
    speech_rms: float = Field(default=500.0, gt=0)  # frame energy that counts as speech
    model_dir: Path | None = None  # `contactd asr fetch` target; default: <data_dir>/models
    model_list_url: str = "https://alphacephei.com/vosk/models/model-list.json"


class SmppSettings(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 2775
    system_id: str = ""
    password: SecretStr = SecretStr("")
    system_type: str = ""
    source_addr: str = ""
    window: int = Field(default=10, ge=1, le=1000)
    max_per_second: float = Field(default=0.0, ge=0)  # 0: no cap
    enquire_link_s: float = Field(default=30.0, gt=0)


class EmailSettings(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 25
    username: str = ""
    password: SecretStr = SecretStr("")
    security: Literal["none", "starttls", "tls"] = "none"
    from_address: str = "contactd@localhost"
    timeout_s: float = Field(default=30.0, gt=0)
    # Connections kept open and reused for bursts; one message at a time on each.
    pool_size: int = Field(default=4, ge=1, le=64)
    validate_certs: bool = True


class EmailInboundSettings(_Section):
    """Mail to the service address: an SMTP endpoint for a local MTA, and/or an IMAP mailbox."""

    smtp_enabled: bool = False
    smtp_host: str = "127.0.0.1"
    smtp_port: Port = 2525
    # Accepted RCPT TO: full addresses ("service@example.com") or whole domains ("@example.com").
    recipients: tuple[str, ...] = ()
    imap_enabled: bool = False
    imap_host: str = "127.0.0.1"
    imap_port: Port = 993
    imap_security: Literal["none", "tls"] = "tls"
    imap_username: str = ""
    imap_password: SecretStr = SecretStr("")
    imap_mailbox: str = "INBOX"
    imap_poll_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    # Bounds for hostile mail; past them it is refused and its raw copy kept.
    max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_depth: int = Field(default=10, ge=1, le=100)
    max_parts: int = Field(default=200, ge=1, le=10000)

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            _local, at, domain = item.rpartition("@")
            if not at or not domain or " " in item:
                raise ValueError(f"{item!r} is neither an address nor '@domain'")
        return tuple(v.lower() for v in value)

    @model_validator(mode="after")
    def _smtp_needs_recipients(self) -> EmailInboundSettings:
        if self.smtp_enabled and not self.recipients:
            raise ValueError("smtp_enabled needs recipients (addresses or '@domain') to accept")
        if self.imap_enabled and not self.imap_username:
            raise ValueError("imap_enabled needs imap_username")
        return self

# What an agent may say a call came to; each one's effect on the lead: dialer/dispositions.py.
DispositionName = Literal["sale", "not_interested", "callback", "no_answer", "busy", "machine",
                          "wrong_number", "do_not_call"]


class DialerSettings(_Section):
    window_start: time = time(8, 0)
    window_end: time = time(21, 0)
    ring_timeout_s: int = Field(default=25, ge=15, le=120)
    # A predictive campaign may end a call that has rung this long, unanswered, when the
    # answers already coming would leave its answer without an agent (0: never). US (TSR) and
    # UK (Ofcom) rules let an unanswered call end after 15 s of ringing, not sooner.
    surplus_hangup_after_s: int = Field(default=15, ge=0, le=120)
    abandon_limit_pct: float = Field(default=3.0, gt=0, le=100)
    abandon_window_days: int = Field(default=30, ge=1)
    abandon_short_window_hours: int = Field(default=24, ge=1)
    agent_connect_s: float = Field(default=2.0, gt=0)
    max_calls_per_second: float = Field(default=20.0, gt=0)
    max_concurrent_calls: int = Field(default=100, ge=1)
    # SMS/e-mail campaigns: how many messages the outbox is given per second.
    campaign_messages_per_second: float = Field(default=10.0, gt=0)
    # The governor aims at this share of the abandon limit, so pacing is cut before the cap.
    abandon_target_fraction: float = Field(default=0.95, gt=0, le=1)
    max_attempts: int = Field(default=3, ge=1)
    retry_busy_s: int = Field(default=600, ge=0)
    retry_no_answer_s: int = Field(default=3600, ge=0)
    retry_machine_s: int = Field(default=7200, ge=0)
    retry_failed_s: int = Field(default=1800, ge=0)
    retry_abandoned_s: int = Field(default=72 * 3600, ge=0)
    machine_action: Literal["leave_message", "fallback", "retry"] = "retry"
    # Zone assumed for numbers phonenumbers cannot place; empty: refuse such numbers.
    unknown_zone_fallback: str = ""
    pacing_tick_s: float = Field(default=1.0, gt=0)
    # Wrap-up after a call ends by itself after this long, until agents end it in the panel.
    agent_wrap_s: float = Field(default=10.0, ge=0)
    # Why an agent is paused, chosen in the workspace so that reports can tell them apart.
    pause_codes: list[str] = Field(
        default_factory=lambda: ["break", "lunch", "training", "meeting", "after_call_work"],
        min_length=1,
    )
    # An agent whose last workspace tab closed and did not come back within this many seconds
    # is paused (reason "tab_closed"), so no call goes to a desk nobody watches.
    tab_closed_pause_s: float = Field(default=30.0, ge=0)
    # Disposition buttons of a campaign that names none (contactd/dialer/dispositions.py).
    dispositions: list[DispositionName] = Field(
        default_factory=lambda: list(get_args(DispositionName)), min_length=1
    )

    @field_validator("window_start", "window_end")
    @classmethod
    def _local_time(cls, value: time) -> time:
        # The calling window is a wall-clock time in each contact's own zone: an offset such
        # as "08:00Z" would silently mean something else.
        if value.tzinfo is not None:
            raise ValueError("give a local time such as 08:00, without a UTC offset or Z")
        return value

    @model_validator(mode="after")
    def _window_order(self) -> DialerSettings:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be later than window_start")
        return self

    @model_validator(mode="after")
    def _surplus_hangup(self) -> DialerSettings:
        after = self.surplus_hangup_after_s
        if after and after < 15:
            raise ValueError(f"surplus_hangup_after_s = {after}: an unanswered call must ring "
                             "at least 15 s before the dialer ends it (0 turns this off)")
        # The default with a ring timeout of 15 s is simply never reached; a value set
        # explicitly that no call can reach is a mistake worth saying.
        if (after and after >= self.ring_timeout_s
                and "surplus_hangup_after_s" in self.model_fields_set):
            raise ValueError(f"surplus_hangup_after_s = {after} must be below ring_timeout_s "
                             f"= {self.ring_timeout_s}, or 0 to turn surplus hang-ups off")
        return self


class InboundQueueSettings(_Section):
    """One inbound queue (contactd/dialer/inbound.py): callers wait on hold, contactd picks
    the agent from the agent board and connects them."""

    # A caller answered within this many seconds counts as within the service level.
    service_level_s: float = Field(default=20.0, gt=0)
    # Who may sign in to the queue: these user names and members of these teams (none: all).
    agents: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    # Among queues, callers of the higher priority are served first.
    priority: int = Field(default=0, ge=0, le=100)
    # A blended agent takes this queue's waiting callers before campaign calls.
    over_campaigns: bool = True


class InboundSettings(_Section):
    """Inbound queues served by contactd's own hand-off (docs/inbound-queues.md)."""

    queues: dict[str, InboundQueueSettings] = {}

    @field_validator("queues")
    @classmethod
    def _queue_names(
        cls, value: dict[str, InboundQueueSettings]
    ) -> dict[str, InboundQueueSettings]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
                raise ValueError(f"queue name {name!r}: use letters, digits, _ and - (at most 64)")
        return value


class DemoSettings(_Section):
    """The simulated world of `contactd demo` and bench/scale.py (contactd/demo/world.py).

    Outcome weights are relative (they need not sum to 100); times are seconds of the
    simulated world, all multiplied by `time_scale` (0.1 runs the world ten times faster)."""

    answered_human: float = Field(default=55.0, ge=0)
    machine: float = Field(default=12.0, ge=0)
    busy: float = Field(default=8.0, ge=0)
    no_answer: float = Field(default=17.0, ge=0)
    congestion: float = Field(default=3.0, ge=0)
    failed: float = Field(default=5.0, ge=0)
    ring_min_s: float = Field(default=2.0, ge=0)
    ring_max_s: float = Field(default=12.0, ge=0)
    talk_min_s: float = Field(default=20.0, ge=0)
    talk_max_s: float = Field(default=150.0, ge=0)
    # Measured in the sandbox (DESIGN.md §4): AMD decides HUMAN in 2.6 s, MACHINE in 2.8 s.
    amd_human_s: float = Field(default=2.6, ge=0)
    amd_machine_s: float = Field(default=2.8, ge=0)
    message_s: float = Field(default=3.0, ge=0)
    abandon_prompt_s: float = Field(default=2.0, ge=0)
    # asterisk-config/extensions.conf CONTACTD_AGENT_WAIT_S.
    agent_wait_s: float = Field(default=2.0, ge=0)
    time_scale: float = Field(default=1.0, gt=0)
    ami_username: str = "contactd"
    ami_port: int = Field(default=0, ge=0, le=65535)  # 0: any free port
    agents: int = Field(default=4, ge=0, le=200)
    # Simulated callers into the IVR (AudioSocket) per minute; 0: none.
    inbound_per_minute: float = Field(default=2.0, ge=0)
    # Share of delivered SMS that the simulated recipient answers, and of those, STOP.
    sms_reply_pct: float = Field(default=30.0, ge=0, le=100)
    sms_stop_pct: float = Field(default=20.0, ge=0, le=100)
    seed: int = 20261204

    @model_validator(mode="after")
    def _ranges(self) -> DemoSettings:
        if self.ring_max_s < self.ring_min_s or self.talk_max_s < self.talk_min_s:
            raise ValueError("ring_max_s/talk_max_s must not be below their minimum")
        return self



class IntakeFormSettings(_Section):
    """One public form (`POST /intake/NAME`): what it accepts and the work it makes."""

    title: str = Field(default="Web form", min_length=1, max_length=120)
    fields: tuple[str, ...] = ("name", "email", "phone", "message")
    required: tuple[str, ...] = ()
    max_length: dict[str, int] = {}  # per field; others default_max_length
    default_max_length: int = Field(default=200, ge=1, le=100_000)
    # callback: a high-priority call-back task; reply: a task to answer the message.
    task: Literal["callback", "reply"] = "reply"
    team: str | None = None
    skill: str | None = None
    # Browser origins allowed to post cross-site (CORS), e.g. "https://www.example.net".
    origins: tuple[str, ...] = ()
    # A field hidden from people; a submission that fills it is kept as spam, not routed.
    honeypot: str = ""
    # HMAC-SHA256 key; when set, every submission must carry a valid signature header.
    secret: SecretStr = SecretStr("")

    @field_validator("fields", "required")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise ValueError(f"field name {name!r}: use a-z, 0-9 and _ (at most 40)")
        return value

    @field_validator("origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", origin):
                raise ValueError(f"origin {origin!r}: give scheme://host[:port], no path")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IntakeFormSettings:
        declared = set(self.fields)
        if not declared & {"phone", "email"}:
            raise ValueError("fields must include phone or email (who to answer)")
        unknown = [n for n in (*self.required, *self.max_length) if n not in declared]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not one of this form's fields")
        if self.honeypot in declared:
            raise ValueError(f"honeypot {self.honeypot!r} must not be a real field")
        if any(n < 1 for n in self.max_length.values()):
            raise ValueError("max_length values must be at least 1")
        return self


class IntakeSettings(_Section):
    """Public web-form intake (contactd/web/intake.py)."""

    # Submissions accepted per source address within the window; more get 429.
    rate_limit: int = Field(default=10, ge=1)
    rate_window_s: float = Field(default=60.0, gt=0)
    max_body_bytes: int = Field(default=16_384, ge=256, le=1_048_576)
    # A signed submission older or newer than this is refused, and a repeat within it too.
    signature_window_s: float = Field(default=300.0, gt=0)
    forms: dict[str, IntakeFormSettings] = {}

    @field_validator("forms")
    @classmethod
    def _form_names(
        cls, value: dict[str, IntakeFormSettings]
    ) -> dict[str, IntakeFormSettings]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name):
                raise ValueError(f"form name {name!r}: use a-z, 0-9, _ and - (at most 40)")
        return value


class IdentificationSettings(_Section):
    """The message an abandoned call hears (safe harbor: who called, a number to call back),
    made by the daemon at start (contactd/ivr/identification.py) into Asterisk's sounds."""

    # Set both to have it spoken by espeak-ng at start; empty: nothing is made.
    company_name: str = Field(default="", max_length=120)
    callback_number: str = Field(default="", max_length=40)
    text: str = ("This is {company}. We are sorry, nobody was free to take your call. "
                 "Please call us back at {number}. Thank you.")
    language: str = "en"
    voice: str = ""
    # A recording (16-bit mono WAV) to use instead of speech; it wins when set.
    recorded_file: Path | None = None
    # What Asterisk's sounds/custom points at (Debian: a link to /usr/local/share/...);
    # the file is <sounds_dir>/<name>.wav, played by the dialplan as custom/<name>.
    sounds_dir: Path = Path("/usr/local/share/asterisk/sounds")
    name: str = Field(default="contactd-identification", pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @field_validator("text")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(company="", number="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{company}} and {{number}} may be used ({exc})") from None
        return value

    @model_validator(mode="after")
    def _both(self) -> IdentificationSettings:
        if bool(self.company_name) != bool(self.callback_number):
            raise ValueError("set company_name and callback_number together")
        return self
class MetricsSettings(_Section):
    # Prometheus text at GET /metrics on the web port. Campaign names and figures are
    # business data: set a token (Authorization: Bearer …) unless only a trusted host scrapes.
    enabled: bool = False
    token: SecretStr = SecretStr("")


class ReportScheduleSettings(_Section):
    """One report e-mailed as a PDF to its subscribers (contactd/crm/report_mail.py)."""

    report: str  # a name from contactd.crm.reports.REPORTS, e.g. "calls_by_day"
    period: Literal["daily", "weekly"] = "daily"  # yesterday, or the last Monday-Sunday
    subscribers: list[str] = Field(min_length=1)  # e-mail addresses
    campaign_id: int | None = None
    team: str | None = None
    agent_id: int | None = None
    hour_utc: int = Field(default=6, ge=0, le=23)  # sent from this hour on (UTC)

    @field_validator("subscribers")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
                raise ValueError(f"subscriber {address!r} is not an e-mail address")
        return value


class WebRtcSettings(_Section):
    # Browser phones in the workspace (contactd/webrtc.py, docs/webrtc.md).
    enabled: bool = False
    include_file: Path = Path("/etc/asterisk/contactd-webrtc.conf")  # pjsip.conf includes it
    ws_url: str = "wss://panel.example.org/ws"  # what the browser connects to (TLS proxy)
    sip_domain: str = "contactd.invalid"  # the host part of the phones' SIP URIs
    endpoint_prefix: str = Field(default="webrtc-", pattern=r"^[a-z0-9._-]{0,16}$")
    endpoint_template: str = "webrtc-endpoint"
    auth_template: str = "webrtc-auth"
    aor_template: str = "webrtc-aor"
    # A phone unregistered this long (a page reload registers again within ~1 s) pauses the agent.
    lost_grace_s: float = Field(default=5.0, ge=0)


class ReportsSettings(_Section):
    schedules: dict[str, ReportScheduleSettings] = {}


class Settings(_Section):
    general: GeneralSettings = GeneralSettings()
    database: DatabaseSettings = DatabaseSettings()
    web: WebSettings = WebSettings()
    ami: AmiSettings = AmiSettings()
    asterisk: AsteriskSettings = AsteriskSettings()
    audiosocket: AudioSocketSettings = AudioSocketSettings()
    speech: SpeechSettings = SpeechSettings()
    smpp: SmppSettings = SmppSettings()
    email: EmailSettings = EmailSettings()
    email_inbound: EmailInboundSettings = EmailInboundSettings()
    dialer: DialerSettings = DialerSettings()
    inbound: InboundSettings = InboundSettings()
    demo: DemoSettings = DemoSettings()
    intake: IntakeSettings = IntakeSettings()
    identification: IdentificationSettings = IdentificationSettings()
    metrics: MetricsSettings = MetricsSettings()
    reports: ReportsSettings = ReportsSettings()
    webrtc: WebRtcSettings = WebRtcSettings()

    @property
    def database_url(self) -> str:
        raw = self.database.url.get_secret_value()
        if raw:
            return raw
        return f"sqlite+aiosqlite:///{self.general.data_dir.resolve() / 'contactd.db'}"


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Turn CONTACTD_SECTION__KEY=value into {"section": {"key": value}}; also return which
    variable set each key, so a wrong value is blamed on that variable, not on the file."""
    tree: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        section = Settings.model_fields.get(path[0])
        if section is None or len(path) != 2:
            # Every setting is [section] key: a third level would be nested under a value.
            where = ".".join(path[:2])
            if section is not None and len(path) > 2 and path[1] in _fields_of(path[0]):
                raise ConfigError(f"{name}: {where} is a single value; it has no sub-key")
            raise ConfigError(
                f"{name}: no such setting {'.'.join(path)!r} "
                "(use CONTACTD_<SECTION>__<KEY>, e.g. CONTACTD_AMI__SECRET)"
            )
        tree.setdefault(path[0], {})[path[1]] = _parse_env_value(value)
        origin[(path[0], path[1])] = name
    return tree, origin


def _fields_of(section: str) -> set[str]:
    annotation = Settings.model_fields[section].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return set(annotation.model_fields)


def _parse_env_value(value: str) -> Any:
    # Lists/arrays may be given as TOML literals; everything else stays a string for pydantic.
    if value.startswith("["):
        try:
            return tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            return value
    return value


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(error: Mapping[str, Any], source: str, origin: Mapping[tuple[str, ...], str]) -> str:
    loc = tuple(str(p) for p in error.get("loc", ()))
    key = ".".join(loc) or "(top level)"
    source = origin.get(loc[:2], source)  # a value from the environment: name its variable
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"{source}: unknown setting {key!r}"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{source}: {key}: {message}"


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate; every problem becomes one ConfigError line naming the key."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        source = str(path)
        try:
            # utf-8-sig: a byte-order mark (some Windows editors write one) is accepted.
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                f"{exc.start}); save the file as UTF-8"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    overrides, origin = _env_overrides(env)
    data = _merge(data, overrides)
    try:
        settings = Settings.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(_describe(first, source, origin) + suffix) from None
    data_dir = settings.general.data_dir
    if path is not None and not data_dir.is_absolute():
        # Relative folders are relative to the config file, not to wherever the daemon started.
        general = settings.general.model_copy(update={"data_dir": path.parent / data_dir})
        settings = settings.model_copy(update={"general": general})
    return settings
