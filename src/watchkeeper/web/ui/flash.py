"""The one-line answer of a page's action: a flash fragment, good or bad."""

from __future__ import annotations

from fastapi import Response

from watchkeeper.web.ui.templating import ENV, PAGE_HEADERS


def flash(message: str, *, error: bool = False) -> str:
    return ENV.get_template("ui/parts/flash.html").render(message=message, error=error)


def refused(message: str, code: int) -> Response:
    """An action that could not be done: a flash with the reason and the status code."""
    return Response(
        flash(message, error=True), status_code=code, media_type="text/html", headers=PAGE_HEADERS
    )
