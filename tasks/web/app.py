"""The web app: jobs and their results, search across videos, and the JSON API.

``create_app()`` builds it from the settings; ``vtrack web`` serves it with uvicorn
(:mod:`tasks.web.server`). The OpenAPI page is at ``/docs`` (and ``/redoc``), served with
no network access.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from config.settings import Settings, get_settings
from tasks.web import api, pages
from tasks.web.security import GuardMiddleware, parse_credentials

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # /docs and /redoc from the Swagger UI and ReDoc files fastapi-offline ships (served
    # under /static-offline-docs), not from a CDN: the page works with no internet.
    app = FastAPIOffline(
        title="vtrack",
        summary="Jobs, their results, and a catalog of which videos contain which objects.",
        version="1",
    )
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(GuardMiddleware, auth=parse_credentials(settings.web_auth))
    return app
