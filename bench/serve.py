"""Serve one of the benchmarked applications under the same uvicorn settings.

``python bench/serve.py bare PORT``: the bare Starlette baseline: ``POST /v1/eligibility``
reads the request's body and answers a fixed JSON document, nothing else (and a GET
``/hello`` kept for the older benchmarks).
``python bench/serve.py platform PORT``: the platform's API on the environment's settings.
``python bench/serve.py floor PORT``: a FastAPI route with the rights check's request and
response models and a bearer check, doing no work: what the framework alone costs.

``python bench/serve.py io_floor PORT``: the I/O a rights check cannot skip (the index
read, the guard's counters, a chained audit row committed) and nothing else
(``bench/io_floor.py``): how close a check can come to the bare POST at all.

A third argument sets the number of uvicorn worker processes (default 1); each worker
builds its own application (and platform) after the fork.
"""

from __future__ import annotations

import sys
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tierspayant.api.schemas import DomainRightOut, EligibilityIn, EligibilityOut


async def hello(_request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


_BARE_ANSWER = b'{"care_date":"2026-01-01","rights":[]}'


async def bare_post(request: Request) -> Response:
    """The baseline of an HTTP figure: the same POST (body and headers) as the target,
    read in full, answered with a fixed document of the same media type."""
    await request.body()
    return Response(_BARE_ANSWER, media_type="application/json")


def bare_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/hello", hello, methods=["GET", "POST"]),
            Route("/v1/eligibility", bare_post, methods=["POST"]),
            Route("/fhir/CoverageEligibilityRequest", bare_post, methods=["POST"]),
        ]
    )


_bearer = HTTPBearer(auto_error=False)


async def _floor_principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None:
        raise HTTPException(401)
    return credentials.credentials


async def _floor_eligibility(
    body: EligibilityIn, _who: Annotated[str, Depends(_floor_principal)]
) -> EligibilityOut:
    rights = [
        DomainRightOut(
            domain=d, covered=False, tiers_payant=False, coverage_code=None, valid_until=None
        )
        for d in body.domains
    ]
    return EligibilityOut(care_date=body.care_date, rights=rights)


def floor_app() -> object:
    # Module-level functions: FastAPI resolves their (string) annotations in this module.
    app = FastAPI()
    app.post("/v1/eligibility", response_model=EligibilityOut)(_floor_eligibility)
    return app


def platform_app() -> object:
    """The platform as production serves it (``tierspayant serve``, ``api/asgi.py``): its
    log lines rendered as JSON, not by structlog's default console renderer (which
    colours and pads every field and cost ~4 % of a rights check's time)."""
    from tierspayant.api.app import create_app
    from tierspayant.app.observability import configure_logging
    from tierspayant.app.platform import open_platform
    from tierspayant.config import load_settings

    configure_logging()
    return create_app(open_platform(load_settings()))


def io_floor_app() -> object:
    from bench.io_floor import io_floor_app as build

    return build()


FACTORIES = {
    "bare": bare_app,
    "floor": floor_app,
    "io_floor": io_floor_app,
    "platform": platform_app,
}


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    if kind not in FACTORIES:
        raise SystemExit(f"unknown application {kind!r}: one of {', '.join(FACTORIES)}")
    if workers == 1:
        app = FACTORIES[kind]()
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)  # type: ignore[arg-type]
    else:
        uvicorn.run(
            f"bench.serve:{FACTORIES[kind].__name__}",
            factory=True,
            workers=workers,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )


if __name__ == "__main__":
    main()
