"""The API as an ASGI application factory, for several uvicorn worker processes:

    uvicorn --factory tierspayant.api.asgi:app --workers 4 --host 127.0.0.1 --port 8000

Each worker builds its own platform after the fork, from the environment's settings
(``load_settings``), and logs JSON lines as ``tierspayant serve`` does. It serves HTTP
only: the background work (adjudication, money runs, checkpoints) runs in
``tierspayant work`` (deploy/systemd/). Set ``PROMETHEUS_MULTIPROC_DIR`` so that
``/metrics`` sums every worker (docs/operations.md, "Several server processes").
"""

from __future__ import annotations

from fastapi import FastAPI

from tierspayant.api.app import create_app
from tierspayant.app.observability import configure_logging
from tierspayant.app.platform import open_platform
from tierspayant.config import load_settings


def app() -> FastAPI:
    """A new application on a platform opened from the environment."""
    configure_logging()
    return create_app(open_platform(load_settings()))
