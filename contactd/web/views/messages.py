"""Send an SMS or e-mail from a template on a contact's card: a preview of the exact text the
contact will get (and its SMS segment count), then the very same text queued in the outbox.
The send form carries the preview's digest: if the text would now differ (the record changed)
the send is refused and the new preview shown; its nonce makes a double submit send once."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from aiohttp import web

from contactd.auth import audit
from contactd.crm.card import ContactCard, load_card
from contactd.enums import Channel, ConsentStatus, Role
from contactd.errors import ConflictError, ValidationError
from contactd.messaging.encoding import MessageTooLongError, choose_coding, split_message
from contactd.messaging.outbox_store import OutboundMessage
from contactd.messaging.templates import RenderedMessage, contact_fields
from contactd.web.access import requires
from contactd.web.i18n import gettext as _
from contactd.web.keys import DATABASE, MESSAGING
from contactd.web.render import page
from contactd.web.views.records import actor_of, contact_id_of

CHANNELS = {"sms": Channel.SMS, "email": Channel.EMAIL}


@dataclass(frozen=True)
class Draft:
    channel: Channel
    to: str
    rendered: RenderedMessage
    body: str
    segments: int | None  # SMS only
    coding: str | None
    digest: str


def _channel(raw: str) -> Channel:
    if raw not in CHANNELS:
        raise ValidationError("channel must be sms or email", field="channel")
    return CHANNELS[raw]


def _recipient(card: ContactCard, channel: Channel) -> str:
    if card.consents.get(channel) is ConsentStatus.REVOKED:
        raise ValidationError(f"this contact revoked consent for {channel.value}",
                              field="channel")
    if channel is Channel.SMS:
        phones = sorted(card.contact.phones, key=lambda p: (p.type.value != "mobile",
                                                            not p.is_primary))
        if not phones:
            raise ValidationError("this contact has no phone number", field="channel")
        return phones[0].e164
    emails = sorted(card.contact.emails, key=lambda e: not e.is_primary)
    if not emails:
        raise ValidationError("this contact has no e-mail address", field="channel")
    return emails[0].address


async def _draft(request: web.Request, card: ContactCard, template: str,
                 channel: Channel) -> Draft:
    org = card.contact.organisation.name if card.contact.organisation else ""
    rendered = request.app[MESSAGING].templates.render(
        template, card.contact.language, contact=contact_fields(card.contact, org))
    to = _recipient(card, channel)
    if channel is Channel.SMS:
        body = rendered.sms or rendered.text.strip()
        try:
            segments: int | None = len(split_message(body, 0))
        except MessageTooLongError as exc:
            raise ValidationError(str(exc), field="template") from None
        coding: str | None = choose_coding(body).name
    else:
        body, segments, coding = rendered.text, None, None
    digest = hashlib.sha256("\0".join((to, rendered.subject, body)).encode()).hexdigest()
    return Draft(channel, to, rendered, body, segments, coding, digest)


def _names(request: web.Request, channel: Channel) -> list[str]:
    need = {"sms", "txt"} if channel is Channel.SMS else {"txt"}
    return sorted(name for name, langs in request.app[MESSAGING].templates.catalogue().items()
                  if any(need & parts for parts in langs.values()))


@requires(Role.AGENT)
async def message_preview(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    channel = _channel(request.query.get("channel", "sms"))
    card = await load_card(request.app[DATABASE], contact_id)
    names = _names(request, channel)
    template = request.query.get("template", "") or (names[0] if names else "")
    draft = await _draft(request, card, template, channel) if template else None
    return page(request, "message.html", {
        "c": card.contact, "channel": channel, "names": names, "template": template,
        "draft": draft, "nonce": uuid.uuid4().hex, "message": "",
    })


@requires(Role.AGENT)
async def message_send(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    form = await request.post()
    channel = _channel(str(form.get("channel", "")))
    template = str(form.get("template", ""))
    nonce = str(form.get("nonce", ""))
    if len(nonce) != 32 or not all(ch in "0123456789abcdef" for ch in nonce):
        raise ValidationError("the form carries no send key; open the preview again",
                              field="nonce")
    card = await load_card(request.app[DATABASE], contact_id)
    draft = await _draft(request, card, template, channel)
    if draft.digest != str(form.get("digest", "")):
        raise ConflictError("the text changed since the preview (the record was edited); "
                            "check the new preview and send again", code="preview_stale")
    message_id = await request.app[MESSAGING].send(OutboundMessage(
        idempotency_key=f"panel:{nonce}", channel=channel, to=draft.to, body=draft.body,
        subject=draft.rendered.subject,
        html_body=draft.rendered.html if channel is Channel.EMAIL else None,
        contact_id=contact_id, template=template, language=draft.rendered.language,
        meta={"user_id": actor_of(request).user_id},
    ))
    async with request.app[DATABASE].transaction() as session:
        audit.record(session, actor_of(request), "message.queue", "contact", contact_id, None,
                     {"message_id": message_id, "channel": channel.value, "template": template})
    names = _names(request, channel)
    return page(request, "message.html", {
        "c": card.contact, "channel": channel, "names": names, "template": template,
        "draft": None, "nonce": "",
        "message": _("Queued for %(to)s.") % {"to": draft.to},
    })


def setup(app: web.Application) -> None:
    app.router.add_get(r"/contacts/{contact_id:\d+}/message", message_preview)
    app.router.add_post(r"/contacts/{contact_id:\d+}/message", message_send)
