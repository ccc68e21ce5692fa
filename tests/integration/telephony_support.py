"""Serve an ASGI app with real uvicorn on a free loopback port, inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import uvicorn


class _QuietServer(uvicorn.Server):
    """Leaves signal handling to pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(make_app: Callable[[str], Any], *, ws: str = "none") -> AsyncIterator[str]:
    """Yield the base URL (``http://127.0.0.1:<port>``) while uvicorn serves the app that
    ``make_app`` builds for that URL (the service must know its public URL before it starts).
    ``ws``: uvicorn's websocket implementation, for apps whose tests open media streams."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = make_app(f"http://127.0.0.1:{port}")
    server = _QuietServer(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", ws=ws)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def seed_dialed_call(
    sessionmaker: Any,
    *,
    persona: str = "answers",
    e164: str = "+8613812345678",
    max_attempts: int = 3,
) -> int:
    """A running campaign with one contact whose call-back has been dialed; returns the call id."""
    from datetime import UTC, datetime

    from voicebot.db.models import Call, CallBack, Campaign, Contact, ContactPhone

    now = datetime.now(UTC)
    async with sessionmaker() as session:
        campaign = Campaign(
            name=f"telephony {persona} {e164}",
            dialog_id="car_loan_followup.zh-CN",
            status="running",
            max_attempts=max_attempts,
            retry_delays={"busy": 60, "no_answer": 60, "failed": 60, "voicemail": 60},
            live_calls=1,
            started_at=now,
        )
        contact = Contact(
            external_id=f"ext-{persona}-{e164}",
            name="王伟",
            time_zone="Asia/Shanghai",
            loan_id=f"L-{e164}",
            fields={"persona": persona},
        )
        contact.phones.append(ContactPhone(position=0, e164=e164))
        session.add_all([campaign, contact])
        await session.flush()
        callback = CallBack(
            campaign_id=campaign.id,
            contact_id=contact.id,
            phone_id=contact.phones[0].id,
            due_at=now,
            status="dialed",
        )
        session.add(callback)
        await session.flush()
        call = Call(
            callback_id=callback.id,
            campaign_id=campaign.id,
            contact_id=contact.id,
            phone_id=contact.phones[0].id,
            loan_key=f"L-{e164}",
            attempt=1,
            to_number=e164,
            status="initiating",
            created_at=now,
        )
        session.add(call)
        await session.commit()
        return call.id
