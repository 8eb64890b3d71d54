"""The socket protocol as an AsyncAPI 3 document, generated from ``chat.protocol``'s types."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from chat import protocol as p

DESCRIPTION = (
    "Sphere's WebSocket protocol v1. Connect to /ws/v1/?ticket=<ticket> (a single-use ticket "
    "from POST /api/v1/auth/ws-ticket) or with a browser session cookie and an allowed Origin. "
    "Every frame is one JSON text object with a `type`. Room events flow after the first "
    "`sync`, in increasing `seq` per room. Close codes: 1009 frame over 64 KiB, 1013 try again "
    "later (reconnect with backoff and sync), 4401 bad or used ticket or a revoked token "
    "(sign in again), 4408 no life for 3 "
    "heartbeats, 4429 outbound buffer full (reconnect and sync), 4430 too many connections "
    "of the user (close another, or reconnect later with backoff), 4500-4999 do not "
    "reconnect (4509 account disabled). `hello.online` lists who is connected among those "
    "the caller hears presence from; `presence` frames keep it current. See docs/protocol.md."
)


def _tag(frame: Any) -> str:
    return str(frame.__struct_config__.tag)


@cache
def document() -> dict[str, Any]:
    frames = [*p.CLIENT_FRAMES, *p.SERVER_FRAMES]
    (_, *_), components = msgspec.json.schema_components(
        frames, ref_template="#/components/schemas/{name}"
    )
    messages: dict[str, Any] = {}
    for frame in frames:
        name = ("client." if frame in p.CLIENT_FRAMES else "server.") + _tag(frame)
        messages[name] = {
            "name": _tag(frame),
            "title": frame.__name__,
            "payload": {"$ref": f"#/components/schemas/{frame.__name__}"},
        }
    channel_messages = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Sphere WebSocket protocol",
            "version": str(p.PROTOCOL),
            "description": DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "channels": {
            "gateway": {
                "address": "/ws/v1/",
                "messages": channel_messages,
                "bindings": {
                    "ws": {
                        "query": {
                            "type": "object",
                            "properties": {
                                "ticket": {
                                    "type": "string",
                                    "description": "single-use, valid 60 s",
                                }
                            },
                        }
                    }
                },
            }
        },
        "operations": {
            "clientFrames": {
                "action": "receive",
                "channel": {"$ref": "#/channels/gateway"},
                "summary": "Frames a client sends.",
                "messages": [
                    {"$ref": f"#/channels/gateway/messages/{name}"}
                    for name in messages
                    if name.startswith("client.")
                ],
            },
            "serverFrames": {
                "action": "send",
                "channel": {"$ref": "#/channels/gateway"},
                "summary": "Frames the server sends.",
                "messages": [
                    {"$ref": f"#/channels/gateway/messages/{name}"}
                    for name in messages
                    if name.startswith("server.")
                ],
            },
        },
        "components": {"schemas": components, "messages": messages},
        "x-heartbeat-s": settings.WS_HEARTBEAT_S,
    }


# GET and HEAD only, outside CSRF (nothing to protect): any other method is 405, not 403.
@csrf_exempt
@require_safe
def asyncapi_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(document())
