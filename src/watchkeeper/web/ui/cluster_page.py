"""``/cluster``: the managers of the cluster, who leads at which term, and the terms' history
(every takeover: who took over from whom, when). A single manager says it is not clustered."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from watchkeeper.web.ports import Cluster
from watchkeeper.web.security import Role, Security
from watchkeeper.web.ui.requirements import principal_of
from watchkeeper.web.ui.templating import render

#: What a manager built without a cluster view shows (a web served on fakes).
ALONE = {"ha": False, "node": "this manager"}


def cluster_ui_router(cluster: Cluster | None, security: Security) -> APIRouter:
    viewer = security.require(Role.VIEWER, page=True)
    router = APIRouter(dependencies=[Depends(viewer)], include_in_schema=False)

    @router.get("/cluster")
    async def cluster_page(request: Request) -> Response:
        status = ALONE if cluster is None else await cluster.status()
        return render(request, "ui/cluster.html", principal_of(request), cluster=status)

    return router
