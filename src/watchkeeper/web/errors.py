"""One place where request errors become HTTP answers, for the API and the pages alike.

    NotFound ─▶ 404    Conflict ─▶ 409    InvalidArgument ─▶ 422    Forbidden ─▶ 403

Routes and the stages behind them raise these (`watchkeeper.errors`); they are never
caught route by route. An API caller gets ``{"detail": message}``; a page's form action
(htmx or a plain form post) gets the one-line flash fragment it shows, with the same code.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse

from watchkeeper.errors import Conflict, Forbidden, InvalidArgument, NotFound, RequestError
from watchkeeper.web.ui.flash import refused

#: The status of each request error.
STATUS: dict[type[RequestError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    InvalidArgument: status.HTTP_422_UNPROCESSABLE_CONTENT,
    Forbidden: status.HTTP_403_FORBIDDEN,
}


def status_of(exc: RequestError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return status.HTTP_400_BAD_REQUEST


def install_error_handlers(app: FastAPI) -> None:
    """Answer every `RequestError` raised by a route with its status and message."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        code = status_of(exc)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.message}, status_code=code)
        return refused(exc.message, code)

    app.add_exception_handler(RequestError, handle)
