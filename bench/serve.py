"""Serve one of the benchmarked applications under the same uvicorn settings.

``python bench/serve.py bare PORT``: the bare Starlette baseline (a hello route).
``python bench/serve.py platform PORT``: the platform's API on the environment's settings.
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


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "bare":
        app: object = bare_app()
    else:
        from tierspayant.api.app import create_app
        from tierspayant.config import load_settings
        from tierspayant.services.platform import open_platform

        app = create_app(open_platform(load_settings()))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
