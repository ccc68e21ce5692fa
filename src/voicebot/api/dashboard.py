"""The page for people: a small dashboard served by the app itself, from static files.

Operations and analysts open ``/dashboard/``, paste their API key, and the page reads the same
``/v1`` API their scripts use (so the role's masking applies to what they see). No build step:
plain HTML, CSS and one JavaScript module, shipped inside the package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DASHBOARD_PATH = "/dashboard"
_ASSETS = Path(str(files("voicebot.api").joinpath("static", "dashboard")))

# The page loads nothing from elsewhere and runs no inline script: a stolen key cannot be
# exfiltrated by injected markup, and the browser enforces it.
_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self._app(scope, receive, with_headers)


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/dashboard/`` and send ``/`` there."""
    app.mount(
        DASHBOARD_PATH,
        _SecurityHeaders(StaticFiles(directory=_ASSETS, html=True)),
        name="dashboard",
    )

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{DASHBOARD_PATH}/")
