"""The web app: jobs and their results, search across videos, and the JSON API.

``create_app()`` builds it from the settings; ``vtrack web`` serves it with uvicorn
(:mod:`entrypoints.web.server`). The OpenAPI page is at ``/docs`` (and ``/redoc``), served with
no network access.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from config.settings import Settings, get_settings
from entrypoints.web import api, pages
from entrypoints.web.security import GuardMiddleware, parse_credentials

STATIC = Path(__file__).parent / "static"
REDIS_DOWN_MESSAGE = "the service cannot reach Redis right now"
# Seconds a client is told to wait before asking again while Redis is down.
REDIS_DOWN_RETRY_AFTER = 5

log = logging.getLogger(__name__)


def redis_down(request: Request, exc: Exception) -> Response:
    """503 with one line while Redis cannot be reached; the app goes on once it is back."""
    from tasks.api import describe_redis_error

    path = request.url.path
    reason = describe_redis_error(exc).removeprefix(REDIS_DOWN_MESSAGE + ": ")
    log.warning("%s: %s %s: %s", REDIS_DOWN_MESSAGE, request.method, path, reason)
    headers = {"Retry-After": str(REDIS_DOWN_RETRY_AFTER)}
    if path.startswith("/api/"):
        return JSONResponse({"detail": REDIS_DOWN_MESSAGE}, status_code=503, headers=headers)
    return PlainTextResponse(REDIS_DOWN_MESSAGE, status_code=503, headers=headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # /docs and /redoc from the Swagger UI and ReDoc files fastapi-offline ships (served
    # under /static-offline-docs), not from a CDN: the page works with no internet.
    app = FastAPIOffline(
        title="vtrack",
        summary="Jobs, their results, and a catalog of which videos contain which objects.",
        version="1",
    )
    from tasks.api import REDIS_DOWN
    from workers.errors import ServiceUnavailableError

    for error in (*REDIS_DOWN, ServiceUnavailableError):
        app.add_exception_handler(error, redis_down)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(GuardMiddleware, auth=parse_credentials(settings.web_auth))
    return app
