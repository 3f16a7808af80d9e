"""The home page ``/`` (French: the four portals and the API documentation) and the API
documentation page ``/docs``: Swagger UI served from the package's own static files, so
it works without internet and loads nothing from elsewhere (the CSP says so too)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tierspayant.web.headers import DOCS_PATH
from tierspayant.web.policy import WebPolicy, policy
from tierspayant.web.render import render
from tierspayant.web.session import Portal, platform_of

OPENAPI_PATH = "/openapi.json"


def router(api_docs: bool) -> APIRouter:
    """``/`` always; ``/docs`` only when the OpenAPI document is served (``api_docs``):
    otherwise that path stays unknown (the API's coded 404)."""
    routes = APIRouter()

    @routes.get("/", **policy(WebPolicy.PUBLIC))
    def home(request: Request) -> Response:
        docs = platform_of(request).settings.api_docs
        return render(
            request,
            "home.html",
            portals=list(Portal),
            docs_url=DOCS_PATH if docs else None,
            openapi_url=OPENAPI_PATH if docs else None,
        )

    if api_docs:

        @routes.get(DOCS_PATH, **policy(WebPolicy.PUBLIC))
        def docs_page(request: Request) -> Response:
            return render(request, "api_docs.html", openapi_url=OPENAPI_PATH)

    return routes
