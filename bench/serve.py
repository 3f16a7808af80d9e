"""Serve one of the benchmarked applications under the same uvicorn settings.

``python bench/serve.py bare PORT``: the bare Starlette baseline (a hello route).
``python bench/serve.py platform PORT``: the platform's API on the environment's settings.
``python bench/serve.py floor PORT``: a FastAPI route with the rights check's request and
response models and a bearer check, doing no work: what the framework alone costs.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(_request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/hello", hello, methods=["GET", "POST"])])


def floor_app() -> object:
    from typing import Annotated

    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    from tierspayant.api.schemas import DomainRightOut, EligibilityIn, EligibilityOut

    app = FastAPI()
    bearer = HTTPBearer(auto_error=False)

    async def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        if credentials is None:
            raise HTTPException(401)
        return credentials.credentials

    @app.post("/v1/eligibility", response_model=EligibilityOut)
    async def eligibility(
        body: EligibilityIn, _who: Annotated[str, Depends(principal)]
    ) -> EligibilityOut:
        rights = [
            DomainRightOut(
                domain=d, covered=False, tiers_payant=False, coverage_code=None, valid_until=None
            )
            for d in body.domains
        ]
        return EligibilityOut(care_date=body.care_date, rights=rights)

    return app


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "bare":
        app: object = bare_app()
    elif kind == "floor":
        app = floor_app()
    else:
        from tierspayant.api.app import create_app
        from tierspayant.config import load_settings
        from tierspayant.services.platform import open_platform

        app = create_app(open_platform(load_settings()))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
