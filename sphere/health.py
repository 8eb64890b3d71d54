"""``/healthz``: 200 when the database, the channel layer and the fan-out tier answer."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from fanout.transport import current as fanout_transport
from sphere.errors import error_body

logger = logging.getLogger(__name__)
TIMEOUT_S = 2.0


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _check_database() -> None:
    await sync_to_async(_database, thread_sensitive=True)()


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "health.ping":
        raise RuntimeError("channel layer returned a foreign message")


async def _check_fanout() -> None:
    if not await fanout_transport().ready():
        raise RuntimeError("fan-out transport did not answer")


CHECKS = {
    "database": _check_database,
    "channel_layer": _check_channel_layer,
    "fanout": _check_fanout,
}


async def _run(name: str) -> tuple[str, bool]:
    try:
        await asyncio.wait_for(CHECKS[name](), TIMEOUT_S)
    except Exception as exc:  # any failure means "not ready"; the log says which
        logger.warning("healthz: %s failed: %s", name, type(exc).__name__)
        return name, False
    return name, True


# GET and HEAD only, and outside CSRF: a probe never sends a token, and with the check first a
# POST would be refused as 403 rather than the API's 405 (the JSON body comes from
# ApiErrorBodyMiddleware). No unsafe method reaches the view, so the exemption opens nothing.
@csrf_exempt
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    results = dict(await asyncio.gather(*(_run(name) for name in CHECKS)))
    checks = {name: "ok" if ok else "failing" for name, ok in results.items()}
    failing = [name for name, ok in results.items() if not ok]
    if failing:
        body = error_body("unavailable", "Not ready: " + ", ".join(failing))
        return JsonResponse({**body, "checks": checks}, status=503)
    return JsonResponse({"status": "ok", "checks": checks})
