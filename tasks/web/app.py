"""The web app: jobs and their results, search across videos, and the JSON API.

``create_app()`` builds it from the settings; ``vtrack web`` serves it with uvicorn
(:mod:`tasks.web.server`). The OpenAPI page is at ``/docs``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from config.settings import Settings, get_settings
from tasks.web import api, pages
from tasks.web.security import GuardMiddleware, parse_credentials

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="vtrack",
        summary="Jobs, their results, and a catalog of which videos contain which objects.",
        version="1",
    )
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(GuardMiddleware, auth=parse_credentials(settings.web_auth))
    return app
