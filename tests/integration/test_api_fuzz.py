"""The OpenAPI document fuzzed with schemathesis against the real app under uvicorn on
PostgreSQL: whatever it generates, no request gets a 500, and every response matches the
document's status codes.

Requests carry an admin key, so generated bodies reach the handlers rather than stopping at
authentication; a campaign and a contact exist, so small generated ids find rows.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.integration.api_support import NoCarrier
from tests.integration.calls_support import serve
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.apikeys import create_api_key
from voicebot.db.models import Campaign, Contact, ContactPhone
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.domain.types import Role

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# Generated cases per operation: enough to reach every parameter's edge values and bodies of
# the wrong shape, while the whole run stays near a minute on two cores.
EXAMPLES = 10


async def _seed(url: str) -> str:
    engine = make_engine(url)
    try:
        maker = make_sessionmaker(engine)
        async with maker() as session:
            key = create_api_key(session, role=Role.ADMIN, name="fuzz")
            session.add(Campaign(name="fuzzed", dialog_id="car_loan_followup.ko-KR"))
            contact = Contact(
                external_id="F-1", name="김민준", time_zone="Asia/Seoul", loan_id="F-1", fields={}
            )
            contact.phones = [ContactPhone(position=0, e164="+821012345678", status="valid")]
            session.add(contact)
            await session.commit()
        return key
    finally:
        await engine.dispose()


async def test_no_generated_request_gets_a_server_error(pg_url: str, tmp_path: Path) -> None:
    key = await _seed(pg_url)

    def make(base: str) -> object:
        settings = Settings(
            environment="test",
            database_url=pg_url,
            dialer_enabled=False,
            public_base_url=base,
        )
        return create_app(settings, carrier=NoCarrier(), run_dialer=False)

    async with serve(make) as base:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance",
            "--header",
            f"Authorization: Bearer {key}",
            "--max-examples",
            str(EXAMPLES),
            "--generation-deterministic",
            "--workers",
            "1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"},
            cwd=tmp_path,
        )
        output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report
    assert "No issues found" in report or "passed" in report, report
