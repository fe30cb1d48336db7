"""API: tasks, messages (queued through MessagingService), campaigns (start, pause), the
agents' live states, and who is asking (/me)."""

from __future__ import annotations

import time

from aiohttp import web
from sqlalchemy import select

from contactd.auth.audit import Actor, record
from contactd.config import DialerSettings
from contactd.crm.tasks import NewTask, TaskService
from contactd.db.models import Campaign, Contact, Task, User
from contactd.dialer.dispositions import campaign_dispositions
from contactd.enums import Channel, Role, TaskStatus
from contactd.errors import NotFoundError, ValidationError
from contactd.messaging.outbox_store import OutboundMessage
from contactd.phones import parse_phone
from contactd.web.api.models import (
    AgentOut,
    Agents,
    CampaignOut,
    CampaignPatch,
    Campaigns,
    CampaignState,
    MeOut,
    MessageCreate,
    MessageQueued,
    TaskCreate,
    TaskOut,
    TaskQuery,
    Tasks,
)
from contactd.web.api.records import must_exist
from contactd.web.api.spec import Api, Empty, path_id
from contactd.web.card import check_script
from contactd.web.keys import DATABASE, SETTINGS, principal
from contactd.web.services import SERVICES, Unavailable

api = Api()


def _tasks(request: web.Request) -> TaskService:
    found = request.app[SERVICES].tasks
    if found is None:
        raise Unavailable("the task service is not running")
    return found


def _task_out(task: Task) -> TaskOut:
    return TaskOut(id=task.id, title=task.title, description=task.description,
                   contact_id=task.contact_id, assignee_id=task.assignee_id, team=task.team,
                   status=task.status, priority=task.priority, due_at=task.due_at)


@api.operation("GET", "/tasks", role=Role.AGENT, tag="tasks", query=TaskQuery, body=Empty,
               response=Tasks, summary="Open tasks: mine, or everyone's (supervisors)")
async def list_tasks(request: web.Request, query: TaskQuery, body: Empty) -> Tasks:
    user = principal(request).user
    if query.assignee == "all" and user.role is Role.AGENT:
        raise ValidationError("agents see their own tasks: assignee=me", field="assignee")
    rows = await _tasks(request).open_tasks(
        assignee_id=user.id if query.assignee == "me" else None, team=query.team,
        limit=query.limit)
    return Tasks(items=[_task_out(t) for t in rows])


@api.operation("POST", "/tasks", role=Role.AGENT, tag="tasks", query=Empty, body=TaskCreate,
               response=TaskOut, status=201,
               summary="Create a task; without an assignee the assignment policy picks one")
async def create_task(request: web.Request, query: Empty, body: TaskCreate) -> TaskOut:
    db = request.app[DATABASE]
    await must_exist(db, Contact, body.contact_id, "contact_id")
    await must_exist(db, User, body.assignee_id, "assignee_id")
    if body.due_at is not None and body.due_at.tzinfo is None:
        raise ValidationError("due_at needs a time zone (e.g. Z)", field="due_at")
    task_id = await _tasks(request).create(NewTask(
        title=body.title.strip() or body.title, description=body.description,
        contact_id=body.contact_id, due_at=body.due_at, priority=body.priority,
        assignee_id=body.assignee_id, created_by_id=principal(request).user.id))
    async with db.session() as session:
        task = await session.get(Task, task_id)
    assert task is not None
    return _task_out(task)


@api.operation("POST", "/tasks/{task_id}/close", role=Role.AGENT, tag="tasks", query=Empty,
               body=Empty, response=TaskOut, errors=(404, 409), summary="Mark a task done")
async def close_task(request: web.Request, query: Empty, body: Empty) -> TaskOut:
    task_id = path_id(request, "task_id")
    await _tasks(request).set_status(task_id, TaskStatus.DONE)
    async with request.app[DATABASE].session() as session:
        task = await session.get(Task, task_id)
    if task is None:
        raise NotFoundError(f"no task {task_id}")
    return _task_out(task)


@api.operation("POST", "/messages", role=Role.AGENT, tag="messages", query=Empty,
               body=MessageCreate, response=MessageQueued, status=202, errors=(404,),
               summary="Queue an SMS or e-mail (text as given, or a template for the contact)")
async def send_message(request: web.Request, query: Empty, body: MessageCreate) -> MessageQueued:
    services = request.app[SERVICES]
    messaging = services.need_messaging()
    to = body.to.strip()
    if body.channel is Channel.SMS:
        to = parse_phone(to, request.app[SETTINGS].general.default_region).e164
    elif "@" not in to or any(c.isspace() for c in to):
        raise ValidationError(f"{to!r} is not an e-mail address", field="to")
    await must_exist(request.app[DATABASE], Contact, body.contact_id, "contact_id")
    if body.template is not None:
        if body.contact_id is None:
            raise ValidationError("a template is rendered for a contact: give contact_id",
                                  field="contact_id")
        message_id = await messaging.send_template(
            idempotency_key=body.idempotency_key, channel=body.channel, to=to,
            template=body.template, contact_id=body.contact_id)
    else:
        if not body.body.strip():
            raise ValidationError("the message has no text", field="body")
        message_id = await messaging.send(OutboundMessage(
            idempotency_key=body.idempotency_key, channel=body.channel, to=to, body=body.body,
            subject=body.subject, contact_id=body.contact_id))
    return MessageQueued(id=message_id)


# ---- campaigns and agents ----------------------------------------------------------------------
@api.operation("GET", "/campaigns", role=Role.AGENT, tag="campaigns", query=Empty, body=Empty,
               response=Campaigns, summary="Every campaign with its state")
async def list_campaigns(request: web.Request, query: Empty, body: Empty) -> Campaigns:
    dialer = request.app[SETTINGS].dialer
    async with request.app[DATABASE].session() as session:
        rows = await session.scalars(select(Campaign).order_by(Campaign.name))
        return Campaigns(items=[_campaign_out(c, dialer) for c in rows])


def _campaign_out(c: Campaign, dialer: DialerSettings) -> CampaignOut:
    return CampaignOut(id=c.id, name=c.name, mode=c.mode, status=c.status, script=c.script,
                       dispositions=[d.name for d in campaign_dispositions(c, dialer)])


@api.operation("PATCH", "/campaigns/{campaign_id}", role=Role.SUPERVISOR, tag="campaigns",
               query=Empty, body=CampaignPatch, response=CampaignOut, errors=(404,),
               summary="Set a campaign's call script and disposition buttons")
async def patch_campaign(request: web.Request, query: Empty, body: CampaignPatch) -> CampaignOut:
    campaign_id = path_id(request, "campaign_id")
    if body.script is not None:
        check_script(body.script)
    async with request.app[DATABASE].transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFoundError(f"no campaign {campaign_id}", code="campaign_not_found")
        before = {"script": campaign.script, "dispositions": campaign.dispositions}
        if body.script is not None:
            campaign.script = body.script
        if body.dispositions is not None:
            campaign.dispositions = list(dict.fromkeys(body.dispositions))
        record(session, Actor(principal(request).user.id, request.remote), "campaign.update",
               "campaign", campaign_id, before,
               {"script": campaign.script, "dispositions": campaign.dispositions})
        return _campaign_out(campaign, request.app[SETTINGS].dialer)


async def _campaign_name(request: web.Request) -> tuple[int, str]:
    campaign_id = path_id(request, "campaign_id")
    async with request.app[DATABASE].session() as session:
        name = await session.scalar(select(Campaign.name).where(Campaign.id == campaign_id))
    if name is None:
        raise NotFoundError(f"no campaign {campaign_id}", code="campaign_not_found")
    return campaign_id, name


@api.operation("POST", "/campaigns/{campaign_id}/start", role=Role.SUPERVISOR,
               tag="campaigns", query=Empty, body=Empty, response=CampaignState,
               errors=(404, 409), summary="Start (or resume) a campaign")
async def start_campaign(request: web.Request, query: Empty, body: Empty) -> CampaignState:
    dialer = request.app[SERVICES].need_dialer()
    campaign_id, name = await _campaign_name(request)
    return CampaignState(id=campaign_id, status=await dialer.start(name))


@api.operation("POST", "/campaigns/{campaign_id}/pause", role=Role.SUPERVISOR,
               tag="campaigns", query=Empty, body=Empty, response=CampaignState,
               errors=(404, 409), summary="Pause a campaign: no new calls, live ones go on")
async def pause_campaign(request: web.Request, query: Empty, body: Empty) -> CampaignState:
    dialer = request.app[SERVICES].need_dialer()
    campaign_id, name = await _campaign_name(request)
    return CampaignState(id=campaign_id, status=await dialer.pause(name))


@api.operation("GET", "/agents", role=Role.SUPERVISOR, tag="agents", query=Empty, body=Empty,
               response=Agents, summary="Agents signed in to campaigns and their states")
async def list_agents(request: web.Request, query: Empty, body: Empty) -> Agents:
    dialer = request.app[SERVICES].dialer
    if dialer is None:
        return Agents(items=[])
    now = time.time()
    dialer.agents.tick(now)
    return Agents(items=[
        AgentOut(username=a.name, campaign_id=a.campaign_id, state=a.state,
                 seconds_in_state=round(max(0.0, now - a.since), 1))
        for a in sorted(dialer.agents.agents.values(), key=lambda a: a.name)])


@api.operation("GET", "/me", role=Role.AGENT, tag="me", query=Empty, body=Empty,
               response=MeOut, summary="Who this session or token belongs to")
async def api_me(request: web.Request, query: Empty, body: Empty) -> MeOut:
    user = principal(request).user
    return MeOut(id=user.id, username=user.username, display_name=user.display_name,
                 role=user.role.value)
