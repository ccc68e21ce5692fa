"""The dashboard in headless Chromium (Debian's ``chromium``), against the real app under uvicorn
on PostgreSQL: an analyst pastes a key, sees campaigns with live progress, a campaign's report and
calls, and a call's transcript and outcomes, with phone numbers masked; an admin sees them whole.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect
from sqlalchemy import update

from tests.integration.api_support import NoCarrier
from tests.integration.calls_support import serve
from tests.integration.results_support import Seeded, seed_results
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.apikeys import create_api_key
from voicebot.db.models import Call
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.domain.types import Role

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Site:
    base: str
    keys: dict[Role, str]
    seeded: Seeded
    pg_url: str


@pytest.fixture
async def site(pg_url: str) -> AsyncIterator[Site]:
    engine = make_engine(pg_url)
    maker = make_sessionmaker(engine)
    seeded = await seed_results(maker)
    async with maker() as session:
        keys = {role: create_api_key(session, role=role, name=f"{role}-ui") for role in Role}
        await session.commit()
    await engine.dispose()

    def make(base: str) -> object:
        settings = Settings(
            environment="test", database_url=pg_url, dialer_enabled=False, public_base_url=base
        )
        return create_app(settings, carrier=NoCarrier(), run_dialer=False)

    async with serve(make) as base:
        yield Site(base=base, keys=keys, seeded=seeded, pg_url=pg_url)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is needed for the dashboard test: apt-get install chromium")
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


async def _open(browser: Browser, site: Site, role: Role | None) -> tuple[Page, list[str]]:
    """The dashboard with ``role``'s key pasted; also the page's errors and foreign requests."""
    page = await browser.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # A refused key's 401 is the page's business (it says so); anything else is a fault.
        if message.type == "error" and "401" not in message.text:
            problems.append(f"console: {message.text}")

    page.on("console", console)
    page.on(
        "response",
        lambda response: (
            problems.append(f"{response.status} for {response.url}")
            if response.status >= 400 and "/v1/" not in response.url
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith(site.base)
            else problems.append(f"foreign request: {request.url}")
        ),
    )
    await page.goto(site.base + "/")
    if role is not None:
        await page.fill("#api-key", site.keys[role])
        await page.click("#key-save")
    return page, problems


async def test_an_analyst_follows_a_campaign_down_to_a_call(browser: Browser, site: Site) -> None:
    page, problems = await _open(browser, site, Role.ANALYST)
    assert page.url == site.base + "/dashboard/#/campaigns" or page.url.startswith(
        site.base + "/dashboard/"
    )
    campaigns = page.locator("#campaigns tbody tr")
    await expect(campaigns).to_have_count(2)
    winter_id = site.seeded.campaigns[0]
    winter = page.locator(f'tr[data-campaign="{winter_id}"]')
    await expect(winter).to_contain_text("winter")
    await expect(winter).to_contain_text("running")

    # Live progress: a call of the campaign is picked up again; the list shows it, unreloaded.
    await expect(page.locator(f'td[data-live="{winter_id}"]')).to_have_text("0")
    engine = make_engine(site.pg_url)
    async with make_sessionmaker(engine)() as session:
        await session.execute(
            update(Call)
            .where(Call.id == site.seeded.calls[0])
            .values(status="in-progress", disposition=None)
        )
        await session.commit()
    await engine.dispose()
    await expect(page.locator(f'td[data-live="{winter_id}"]')).to_have_text("1", timeout=8000)

    await winter.locator("a").click()
    async with httpx.AsyncClient(base_url=site.base) as http:
        report = (
            await http.get(
                f"/v1/reports/campaigns/{winter_id}",
                headers={"Authorization": f"Bearer {site.keys[Role.ANALYST]}"},
            )
        ).json()["totals"]
    promise_rate = f"{report['promise_rate'] * 100:.1f}%"
    await expect(page.locator('[data-metric="promise_rate"] .value')).to_have_text(promise_rate)
    await expect(page.locator('[data-metric="attempts"] .value')).to_have_text(
        str(report["attempts"])
    )
    await expect(page.locator("#day-chart svg rect")).to_have_count(2 * 2)  # two days, two bars
    await expect(page.locator("#calls tbody tr")).to_have_count(6)
    text = await page.locator("#view").inner_text()
    assert "+8613812345678" not in text and "5678" in text  # masked for the analyst

    promised_call = site.seeded.calls[1]
    await page.locator(f'tr[data-call="{promised_call}"] a').click()
    await expect(page.locator("h1")).to_have_text(f"Call #{promised_call}")
    await expect(page.locator('#outcomes [data-outcome="promise"]')).to_contain_text("3500.00")
    await expect(page.locator("#transcript .turn.borrower")).to_contain_text("是我")
    await expect(page.locator("#number")).not_to_have_text("+8613812345678")
    assert problems == []


async def test_an_admin_sees_numbers_whole(browser: Browser, site: Site) -> None:
    page, problems = await _open(browser, site, Role.ADMIN)
    await page.goto(f"{site.base}/dashboard/#/calls/{site.seeded.calls[1]}")
    await expect(page.locator("#number")).to_have_text("+8613812345678")
    assert problems == []


async def test_without_a_key_or_with_a_wrong_one_the_page_says_so(
    browser: Browser, site: Site
) -> None:
    page, _ = await _open(browser, site, None)
    await expect(page.locator("#status")).to_contain_text("Paste an API key")
    await page.fill("#api-key", "vb_nope_nothing")
    await page.click("#key-save")
    await expect(page.locator("#status")).to_contain_text("The API refused this key")
    await expect(page.locator("#view")).to_be_empty()


async def test_the_page_is_served_with_a_strict_content_security_policy(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.base) as http:
        home = await http.get("/")
        page = await http.get("/dashboard/")
        script = await http.get("/dashboard/app.js")
    assert (home.status_code, home.headers["location"]) == (307, "/dashboard/")
    assert page.status_code == 200 and "<title>voicebot dashboard</title>" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
