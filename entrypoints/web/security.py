"""Who may reach the web app, and which requests may change something.

* ``VTRACK_WEB_AUTH=user:password``: HTTP basic auth on every page, API call, output file
  and the OpenAPI page, as Flower does.
* Without it the app is for this machine only: :func:`check_listen_host` refuses to listen
  on anything but the loopback interface, and requests naming another host in ``Host`` are
  refused (a web page elsewhere cannot reach it through DNS rebinding).
* Browsers send basic-auth credentials (and reach loopback servers) on their own, so
  requests that change something (POST, PUT, PATCH, DELETE) are refused when their
  ``Origin`` (or, without one, ``Referer``) is another site. Clients that are not browsers
  (curl, scripts) send neither header and pass.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from workers.errors import InputError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REALM = "vtrack"


def parse_credentials(value: str) -> tuple[str, str] | None:
    """``user:password`` from ``VTRACK_WEB_AUTH``; None when empty."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise InputError("VTRACK_WEB_AUTH must be user:password (both non-empty)")
    return user, password


def is_loopback(host: str) -> bool:
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_listen_host(host: str, auth: tuple[str, str] | None) -> None:
    """Refuse to listen beyond loopback without credentials."""
    if auth is None and not is_loopback(host):
        raise InputError(
            f"refusing to listen on {host} without VTRACK_WEB_AUTH=user:password "
            "(without auth, vtrack web serves this machine only: use --host 127.0.0.1)"
        )


class GuardMiddleware:
    """Basic auth, loopback-only ``Host`` without auth, and same-origin state changes."""

    def __init__(self, app: ASGIApp, auth: tuple[str, str] | None) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        host = headers.get("host", b"").decode("latin-1")
        if self.auth is None:
            if not is_loopback(_host_name(host)):
                await _plain(send, 403, "vtrack web serves this machine only (no VTRACK_WEB_AUTH)")
                return
        elif not self._authorized(headers.get("authorization", b"").decode("latin-1")):
            await _plain(
                send,
                401,
                "authentication required",
                [(b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode())],
            )
            return
        if scope["method"] in STATE_CHANGING_METHODS and not _same_origin(headers, host):
            await _plain(send, 403, "cross-origin request refused")
            return
        await self.app(scope, receive, send)

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or self.auth is None:
            return False
        try:
            user, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        good_user = secrets.compare_digest(user.encode(), self.auth[0].encode())
        good_password = secrets.compare_digest(password.encode(), self.auth[1].encode())
        return good_user and good_password


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_origin(headers: dict[str, bytes], host: str) -> bool:
    """Whether a state-changing request comes from this app's own pages (or no browser)."""
    origin = headers.get("origin", b"").decode("latin-1")
    if not origin:
        referer = headers.get("referer", b"").decode("latin-1")
        if not referer:
            return True  # not a browser: curl, scripts, the CLI
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


async def _plain(
    send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
