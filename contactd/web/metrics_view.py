"""GET /metrics: the daemon's Prometheus text, behind a bearer token when one is set."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from contactd.metrics import Metrics
from contactd.web.access import public

METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
METRICS_TOKEN: web.AppKey[str] = web.AppKey("metrics_token", str)


@public  # no session: a scraper is not a user; the token (when set) is checked here
async def metrics(request: web.Request) -> web.Response:
    token = request.app[METRICS_TOKEN]
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise web.HTTPUnauthorized(
                text="metrics need Authorization: Bearer <metrics.token>\n",
                headers={"WWW-Authenticate": 'Bearer realm="contactd metrics"'})
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application, registry: Metrics, token: str) -> None:
    app[METRICS] = registry
    app[METRICS_TOKEN] = token
    app.router.add_get("/metrics", metrics)
