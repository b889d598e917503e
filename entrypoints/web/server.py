"""``vtrack web``: serve the app with uvicorn, on loopback unless credentials are set."""

from __future__ import annotations

from config.settings import get_settings
from entrypoints.web.security import check_listen_host, parse_credentials


def serve(host: str, port: int) -> None:
    """Serve until interrupted. Refuses (one line, exit 2) a non-loopback host without auth."""
    import uvicorn

    from entrypoints.web.app import create_app
    from tasks.api import current_catalog

    settings = get_settings()
    check_listen_host(host, parse_credentials(settings.web_auth))
    catalog = current_catalog()
    catalog.prepare()  # a catalog that cannot be opened shows now, not at the first search
    app = create_app(settings)
    print(f"vtrack web on http://{host}:{port}  (catalog: {catalog.describe()})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)
