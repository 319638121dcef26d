"""The pages' Jinja environment and the headers every page is sent with.

Pages load scripts and styles only from ``/static`` (``default-src 'self'``): no inline
script, no inline style, nothing from another site. Templates get the formatting helpers
as filters and the logged-in `Principal` as ``principal``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from watchkeeper import __version__
from watchkeeper.web.security import Principal, Role
from watchkeeper.web.ui import formatting

TEMPLATES = Path(__file__).parent.parent / "templates"
STATIC = Path(__file__).parent.parent / "static"

#: Sent with every page and fragment: nothing but this site, never framed.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def _path_part(value: str) -> str:
    """A check key or host name as one URL path segment (``!`` kept, ``/`` escaped)."""
    return quote(value, safe="!")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        state_class=formatting.state_class,
        duration=formatting.duration,
        timestamp=formatting.timestamp,
        epoch=formatting.epoch_of,
        path=_path_part,
    )
    env.globals.update(
        SERVICE_STATES=formatting.SERVICE_STATES,
        HOST_STATES=formatting.HOST_STATES,
        Role=Role,
        app_version=__version__,
    )
    return env


ENV = _environment()
#: What `render` gives every template besides the route's own context.
COMMON_CONTEXT = ("request", "path", "principal", "can_act", "now", "age", "query")


def render(
    request: Request,
    template: str,
    principal: Principal,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page or fragment, with the page headers and the common context.

    A route's context may not reuse a global's name or one of `COMMON_CONTEXT`: the page
    would show the route's value where every page expects the shared one (a version
    page once showed a Python object where the application's version belonged).
    """
    clash = sorted(context.keys() & (set(ENV.globals) | set(COMMON_CONTEXT)))
    if clash:
        raise ValueError(f"{template}: context {', '.join(clash)} shadows what every page uses")
    now = time.time()

    def age(epoch: Any) -> str:
        return formatting.age(formatting.epoch_of(epoch), now)

    def query(**changes: Any) -> str:
        """This page's query string with ``changes`` (None drops a parameter)."""
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
        for key, value in changes.items():
            if value is None:
                continue
            if isinstance(value, list | tuple):
                params.extend((key, str(v)) for v in value)
            else:
                params.append((key, str(value)))
        return "?" + urlencode(params) if params else "?"

    body = ENV.get_template(template).render(
        request=request,
        path=request.url.path,
        principal=principal,
        can_act=principal.allows(Role.OPERATOR),
        now=now,
        age=age,
        query=query,
        **context,
    )
    return HTMLResponse(body, status_code=status_code, headers=PAGE_HEADERS | (headers or {}))


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it then wants a fragment, not a page)."""
    return request.headers.get("hx-request") == "true"
