"""The web interface: server-rendered pages with htmx live blocks and uPlot graphs.

`create_ui_router` gathers the page routers (`pages`, `records`) and the operator form
routes (`actions`); templates live in ``web/templates/ui`` and the scripts, styles and
vendored libraries in ``web/static``.
"""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import RedirectResponse

from watchkeeper import store
from watchkeeper.web.ports import WebPorts
from watchkeeper.web.security import Role, Security
from watchkeeper.web.ui.actions import actions_router
from watchkeeper.web.ui.pages import pages_router
from watchkeeper.web.ui.records import records_router
from watchkeeper.web.ui.templating import STATIC

__all__ = ["STATIC", "create_ui_router"]


def create_ui_router(db: store.Database, ports: WebPorts, security: Security) -> APIRouter:
    """Every page (viewer; anonymous browsers go to ``/login``) and action (operator)."""
    viewer = security.require(Role.VIEWER, page=True)
    operator = security.require(Role.OPERATOR, page=True)
    router = APIRouter(include_in_schema=False)

    @router.get("/favicon.ico")
    async def favicon() -> RedirectResponse:
        """Browsers ask for it on every page, the login form too: public, like /static."""
        return RedirectResponse("/static/favicon.svg", status.HTTP_301_MOVED_PERMANENTLY)

    router.include_router(actions_router(ports.ops, operator=operator))
    router.include_router(pages_router(db, ports.read, viewer=viewer))
    router.include_router(records_router(db, ports.read, viewer=viewer))
    return router
