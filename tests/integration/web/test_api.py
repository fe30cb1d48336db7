"""The JSON API: the OpenAPI document lists every /api/v1 route, requests are validated by the
same models, errors are problem+json with stable codes, stale edits are refused, and the
access rules (token, session + CSRF, roles) hold."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from sqlalchemy import select

from contactd.db.models import Campaign, OutboxMessage, Task
from contactd.db.session import Database
from contactd.enums import CampaignMode, MessageState, TaskStatus
from contactd.web.api.routes import OPENAPI_PATH
from tests.integration.web.conftest import sign_in
from tests.integration.web.live_panel import LivePanel, live_panel_fixture  # noqa: F401

API = "/api/v1"


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    return {(route.method, route.resource.canonical) for route in app.router.routes()
            if route.resource is not None and route.resource.canonical.startswith(API)
            and route.method != "HEAD"}


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, (response.status, await response.text())
    return await response.json()


async def test_every_api_route_is_in_the_openapi_document(live_panel: LivePanel) -> None:
    doc = await _json(await live_panel.client.get(OPENAPI_PATH, headers=live_panel.auth("alex")),
                      200)
    assert doc["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served = api_routes(live_panel.app) - {("GET", OPENAPI_PATH)}
    assert served == documented
    assert {("POST", f"{API}/contacts"), ("PATCH", f"{API}/contacts/{{contact_id}}"),
            ("GET", f"{API}/agents"), ("POST", f"{API}/messages")} <= documented
    # Every schema the operations point at exists (a dangling $ref would fail clients).
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', str(doc).replace("'", '"')))
    assert refs and refs <= set(doc["components"]["schemas"])


async def test_a_contact_is_created_read_listed_by_key_and_found(live_panel: LivePanel) -> None:
    client, auth = live_panel.client, live_panel.auth("alex")
    made = []
    for first, last, phone in (("Ada", "Lovelace", "+44 20 7946 0100"),
                               ("Grace", "Hopper", "+44 20 7946 0101"),
                               ("Alan", "Turing", "+44 20 7946 0102")):
        response = await client.post(f"{API}/contacts", headers=auth, json={
            "first_name": first, "last_name": last, "phones": [phone], "tags": ["vip"]})
        body = await _json(response, 201)
        assert response.headers["ETag"] == f'"{body["version"]}"'
        made.append(body)
    assert made[1]["phones"][0]["e164"] == "+442079460101"
    one = await _json(await client.get(f"{API}/contacts/{made[1]['id']}", headers=auth), 200)
    assert (one["first_name"], one["tags"]) == ("Grace", ["vip"])

    first = await _json(await client.get(f"{API}/contacts?limit=2", headers=auth), 200)
    assert [c["name"] for c in first["items"]] == ["Ada Lovelace", "Grace Hopper"]
    rest = await _json(await client.get(f"{API}/contacts?limit=2&cursor={first['next']}",
                                        headers=auth), 200)
    assert ([c["name"] for c in rest["items"]], rest["next"]) == (["Alan Turing"], None)
    found = await _json(await client.get(f"{API}/contacts?q=Hop", headers=auth), 200)
    assert [c["id"] for c in found["items"]] == [made[1]["id"]]

    duplicate = await client.post(f"{API}/contacts", headers=auth,
                                  json={"first_name": "Grace", "phones": ["+442079460101"]})
    problem = await _json(duplicate, 409)
    assert duplicate.content_type == "application/problem+json"
    assert problem["code"] == "contact_duplicate"


async def test_an_edit_needs_the_version_it_read_and_a_stale_one_is_refused(
    live_panel: LivePanel,
) -> None:
    client, auth = live_panel.client, live_panel.auth("alex")
    created = await client.post(f"{API}/contacts", headers=auth, json={"last_name": "Hopper"})
    contact = await _json(created, 201)
    url, etag = f"{API}/contacts/{contact['id']}", created.headers["ETag"]

    missing = await client.patch(url, headers=auth, json={"first_name": "Grace"})
    assert (await _json(missing, 428))["code"] == "if_match_required"
    edited = await client.patch(url, headers={**auth, "If-Match": etag},
                                json={"first_name": "Grace"})
    assert (await _json(edited, 200))["first_name"] == "Grace"
    assert edited.headers["ETag"] != etag
    # A second editor still holding the first version loses nothing and overwrites nothing.
    stale = await client.patch(url, headers={**auth, "If-Match": etag},
                               json={"first_name": "Amazing Grace"})
    assert (await _json(stale, 412))["code"] == "stale_edit"
    now = await _json(await client.get(url, headers=auth), 200)
    assert now["first_name"] == "Grace"


async def test_bad_input_is_a_problem_naming_the_field(live_panel: LivePanel) -> None:
    client, auth = live_panel.client, live_panel.auth("alex")
    cases = [
        (await client.post(f"{API}/contacts", headers=auth, json={"first_name": 7}),
         "first_name"),
        (await client.post(f"{API}/contacts", headers=auth, json={"nickname": "x"}),
         "nickname"),
        (await client.post(f"{API}/contacts", headers=auth, json={"organisation_id": 99}),
         "organisation_id"),
        (await client.get(f"{API}/contacts?limit=0", headers=auth), "limit"),
        (await client.post(f"{API}/contacts", headers=auth, json={"phones": ["12"]}), "phones"),
    ]
    for response, field in cases:
        problem = await _json(response, 422)
        assert response.content_type == "application/problem+json"
        assert (problem["code"], problem["field"]) == ("invalid_input", field), problem
    gone = await client.get(f"{API}/contacts/424242", headers=auth)
    assert (await _json(gone, 404))["code"] == "contact_not_found"


async def test_tokens_sessions_csrf_and_roles(live_panel: LivePanel, db: Database) -> None:
    client = live_panel.client
    anonymous = await client.get(f"{API}/contacts")
    assert (await _json(anonymous, 401))["code"] == "not_signed_in"
    assert anonymous.content_type == "application/problem+json"
    # An agent may not see the agents board or start campaigns; a supervisor may.
    assert (await client.get(f"{API}/agents", headers=live_panel.auth("alex"))).status == 403
    await _json(await client.get(f"{API}/agents", headers=live_panel.auth("sam")), 200)
    forbidden = await client.post(f"{API}/products", headers=live_panel.auth("alex"),
                                  json={"sku": "A1", "name": "A", "kind": "product",
                                        "unit_price": "1.00"})
    assert forbidden.status == 403
    # A session (cookie) must send its CSRF token on a change; a token needs none.
    signed = await sign_in(client, "alex")
    assert signed is not None and signed.status == 303
    no_csrf = await client.post(f"{API}/tasks", json={"title": "Call back"})
    assert (await _json(no_csrf, 403))["code"] == "csrf_rejected"
    page = await (await client.get("/account")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    task = await _json(await client.post(f"{API}/tasks", json={"title": "Call back"},
                                         headers={"X-CSRF-Token": csrf.group(1)}), 201)
    assert task["assignee_id"] is not None


async def test_tasks_are_listed_and_closed(live_panel: LivePanel, db: Database) -> None:
    client, auth = live_panel.client, live_panel.auth("alex")
    mine = await _json(await client.post(f"{API}/tasks", headers=auth, json={
        "title": "Send the offer", "assignee_id": live_panel.user_ids["alex"],
        "due_at": "2030-01-02T09:00:00Z", "priority": "high"}), 201)
    listed = await _json(await client.get(f"{API}/tasks", headers=auth), 200)
    assert [t["id"] for t in listed["items"]] == [mine["id"]]
    assert (await client.get(f"{API}/tasks?assignee=all", headers=auth)).status == 422
    closed = await _json(await client.post(f"{API}/tasks/{mine['id']}/close", headers=auth),
                         200)
    assert closed["status"] == "done"
    again = await client.post(f"{API}/tasks/{mine['id']}/close", headers=auth)
    assert (await _json(again, 409))["code"] == "task_transition_invalid"
    async with db.session() as session:
        assert (await session.get(Task, mine["id"])).status is TaskStatus.DONE  # type: ignore[union-attr]


async def test_a_message_is_queued_durably_once_per_key(live_panel: LivePanel,
                                                        db: Database) -> None:
    client, auth = live_panel.client, live_panel.auth("alex")
    body = {"channel": "sms", "to": "+44 7911 123456", "body": "Your order shipped",
            "idempotency_key": "order-17-shipped"}
    first = await _json(await client.post(f"{API}/messages", headers=auth, json=body), 202)
    again = await _json(await client.post(f"{API}/messages", headers=auth, json=body), 202)
    assert first == again
    async with db.session() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
    assert [(r.id, r.to_address, r.body) for r in rows] == [(first["id"], "+447911123456",
                                                      "Your order shipped")]
    assert rows[0].state in (MessageState.QUEUED, MessageState.SENDING, MessageState.FAILED)
    bad = await client.post(f"{API}/messages", headers=auth,
                            json={**body, "to": "not a number", "idempotency_key": "k2"})
    assert (await _json(bad, 422))["field"] == "phone"


async def test_campaign_commands_need_the_dialer(live_panel: LivePanel) -> None:
    """This panel runs without AMI, so without a dialer: it says so instead of failing."""
    response = await live_panel.client.post(f"{API}/campaigns/1/start",
                                            headers=live_panel.auth("sam"))
    assert (await _json(response, 503))["code"] == "service_unavailable"
    listed = await _json(await live_panel.client.get(f"{API}/campaigns",
                                                     headers=live_panel.auth("alex")), 200)
    assert listed == {"items": []}


async def test_a_supervisor_sets_the_script_and_the_buttons(live_panel: LivePanel,
                                                            db: Database) -> None:
    async with db.transaction() as session:
        campaign = Campaign(name="spring", mode=CampaignMode.PROGRESSIVE)
        session.add(campaign)
        await session.flush()
        url = f"{API}/campaigns/{campaign.id}"
    body = {"script": "Hello {{ first_name }}", "dispositions": ["sale", "callback", "sale"]}
    assert (await live_panel.client.patch(url, json=body,
                                          headers=live_panel.auth("alex"))).status == 403
    changed = await _json(await live_panel.client.patch(url, json=body,
                                                        headers=live_panel.auth("sam")), 200)
    assert (changed["script"], changed["dispositions"]) == ("Hello {{ first_name }}",
                                                            ["sale", "callback"])
    broken = await live_panel.client.patch(url, json={"script": "Hello {{ first_name "},
                                           headers=live_panel.auth("sam"))
    assert (await _json(broken, 422))["field"] == "script"
    unknown = await live_panel.client.patch(url, json={"dispositions": ["maybe"]},
                                            headers=live_panel.auth("sam"))
    assert (await _json(unknown, 422))["field"] == "dispositions.0"
    listed = await _json(await live_panel.client.get(f"{API}/campaigns",
                                                     headers=live_panel.auth("alex")), 200)
    assert listed["items"][0]["dispositions"] == ["sale", "callback"]
