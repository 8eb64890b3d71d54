"""The client's one page. Everything else it does goes through the public API and socket."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe


@require_safe
@ensure_csrf_cookie  # the page's script sends it back with its logins and writes
def index(request: HttpRequest) -> HttpResponse:
    response = render(request, "web/index.html")
    host = request.get_host()
    # Scripts, styles and connections from this origin only (the socket included); no
    # framing, no inline script.
    response["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://{host} wss://{host}; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'; object-src 'none'"
    )
    return response
