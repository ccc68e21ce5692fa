"""Notifications end to end, on both databases: outcomes become signed events; the receiver is
down (nothing listening, then failing) across an app restart, then up; every event arrives
once, in order per contact. Deliveries given up on are sent again when an admin asks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from prometheus_client import REGISTRY
from sqlalchemy import update

from tests.integration.api_support import Api, running_api
from tests.integration.results_support import Seeded, seed_results
from voicebot.config import Settings
from voicebot.db.models import NotificationDelivery, Outcome
from voicebot.db.notifications import claim_due, enqueue, mark_delivered, mark_failed_attempt
from voicebot.domain.types import Role
from voicebot.notifications.signing import EVENT_ID, signature, verify

SECRET = "0123456789abcdef-receiver-secret"


@dataclass
class Receiver:
    """An HTTP endpoint that refuses the first ``failures`` requests (503), then accepts."""

    failures: int = 0
    secret: str = SECRET
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    bad_signatures: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if not verify(self.secret, {k.title(): v for k, v in headers.items()}, body):
            self.bad_signatures += 1
        if self.failures > 0:
            self.failures -= 1
            self.refused += 1
            status = 503
        else:
            event = json.loads(body)
            assert str(event["id"]) == headers[EVENT_ID.lower()]
            self.accepted.append(event)
            status = 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def listening(receiver: Receiver, port: int) -> AsyncIterator[None]:
    server = _Server(
        uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "notification_poll_seconds": 0.05,
            "notification_retry_base_seconds": 0.05,
            "notification_retry_max_seconds": 0.2,
            "notification_timeout_seconds": 2.0,
        }
    )


async def _add_outcomes(api: Api, seeded: Seeded, kinds: list[tuple[int, str]]) -> None:
    """Outcomes as a conversation stores them: (contact index, type)."""
    now = datetime.now(UTC)
    async with api.sessionmaker() as session:
        for n, (contact, kind) in enumerate(kinds):
            data: dict[str, Any] = {
                "risk_flag": {"flag": "hardship", "text": f"#{n}"},
                "complaint": {"category": "harassment", "text": f"#{n}"},
                "opt_out": {},
                "confirmation": {"fields": ["identity"]},
            }[kind]
            session.add(
                Outcome(
                    call_id=seeded.calls[0],
                    contact_id=seeded.contacts[contact],
                    campaign_id=seeded.campaigns[0],
                    type=kind,
                    data=data,
                    created_at=now + timedelta(milliseconds=n),
                )
            )
        await session.commit()


async def _deliveries(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.http.get(
        "/v1/notifications/deliveries",
        params={"limit": 500, **params},
        headers=api.auth(Role.ANALYST),
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _wait_for(predicate: Any, seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still not true after {seconds} s: {predicate}")


async def _seed(api: Api) -> Seeded:
    """The results rows, their promises due far ahead (no broken-promise events here)."""
    seeded = await seed_results(api.sessionmaker)
    async with api.sessionmaker() as session:
        for outcome_id in seeded.outcomes["promise"]:
            outcome = await session.get(Outcome, outcome_id)
            assert outcome is not None
            outcome.data = {**outcome.data, "date": "2099-01-01"}
        await session.commit()
    return seeded


KINDS = [
    (0, "risk_flag"),
    (1, "complaint"),
    (0, "complaint"),
    (2, "opt_out"),
    (1, "confirmation"),  # not an event
    (0, "opt_out"),
    (1, "risk_flag"),
    (2, "complaint"),
    (0, "risk_flag"),
]


async def test_down_then_up_across_a_restart_each_event_once_in_order(fast: Settings) -> None:
    port = _free_port()
    receiver = Receiver(failures=4)
    async with running_api(fast) as api:
        # The seeded outcomes predate the endpoint: they make events that go nowhere.
        seeded = await _seed(api)
        await _wait_for(lambda: _events_made(api, 4))
        created = await api.http.post(
            "/v1/notifications/endpoints",
            json={"url": f"http://127.0.0.1:{port}/hook", "secret": SECRET},
            headers=api.auth(Role.ADMIN),
        )
        assert created.status_code == 201, created.text
        assert "secret" not in created.json()
        await _add_outcomes(api, seeded, KINDS)
        # Nothing listens: attempts fail and are retried.
        await _wait_for(lambda: _attempted(api, 3))
        pending = await _deliveries(api, status="pending")
        assert len(pending) == 8
        assert any("ConnectError" in (d["last_error"] or "") for d in pending)
    # The app restarts; the receiver comes up, failing its first requests, then accepting.
    async with listening(receiver, port), running_api(fast) as api:
        await _wait_for(lambda: _all_delivered(api, 8))
        delivered = await _deliveries(api, status="delivered")
    assert receiver.refused == 4
    assert receiver.bad_signatures == 0
    ids = [e["id"] for e in receiver.accepted]
    assert sorted(ids) == sorted({d["event_id"] for d in delivered})
    assert len(ids) == len(set(ids)) == 8
    by_contact: dict[int, list[int]] = {}
    for event in receiver.accepted:
        by_contact.setdefault(event["contact_id"], []).append(event["id"])
    for events in by_contact.values():
        assert events == sorted(events)
    kinds = [(e["contact_id"], e["type"], e["data"].get("text")) for e in receiver.accepted]
    expected = [
        (seeded.contacts[c], k, f"#{n}" if k != "opt_out" else None)
        for n, (c, k) in enumerate(KINDS)
        if k != "confirmation"
    ]
    assert sorted(kinds, key=str) == sorted(expected, key=str)
    assert all(d["attempts"] >= 1 and d["response_status"] == 204 for d in delivered)


async def _events_made(api: Api, n: int) -> bool:
    from sqlalchemy import func, select

    from voicebot.db.models import NotificationEvent

    async with api.sessionmaker() as session:
        made = await session.scalar(select(func.count()).select_from(NotificationEvent))
    return (made or 0) >= n


async def _attempted(api: Api, attempts: int) -> bool:
    pending = await _deliveries(api, status="pending")
    return len(pending) == 8 and any(d["attempts"] >= attempts for d in pending)


async def _all_delivered(api: Api, n: int) -> bool:
    return len(await _deliveries(api, status="delivered")) == n


async def test_only_subscribed_types_go_to_an_endpoint_and_admins_manage_them(
    fast: Settings,
) -> None:
    port = _free_port()
    receiver = Receiver()
    async with listening(receiver, port), running_api(fast) as api:
        seeded = await _seed(api)
        await _wait_for(lambda: _events_made(api, 4))
        body = {
            "url": f"http://127.0.0.1:{port}/",
            "secret": SECRET,
            "event_types": ["risk_flag"],
        }
        refused = await api.http.post(
            "/v1/notifications/endpoints", json=body, headers=api.auth(Role.OPERATOR)
        )
        assert refused.status_code == 403
        created = (
            await api.http.post(
                "/v1/notifications/endpoints", json=body, headers=api.auth(Role.ADMIN)
            )
        ).json()
        await _add_outcomes(api, seeded, [(0, "complaint"), (1, "risk_flag")])
        await _wait_for(lambda: _all_delivered(api, 1))
        assert [e["type"] for e in receiver.accepted] == ["risk_flag"]
        gone = await api.http.delete(
            f"/v1/notifications/endpoints/{created['id']}", headers=api.auth(Role.ADMIN)
        )
        assert gone.status_code == 204
        listed = await api.http.get("/v1/notifications/endpoints", headers=api.auth(Role.ADMIN))
        assert [e["active"] for e in listed.json()] == [False]
        for bad in ({**body, "secret": "short"}, {**body, "url": "ftp://x"}):
            response = await api.http.post(
                "/v1/notifications/endpoints", json=bad, headers=api.auth(Role.ADMIN)
            )
            assert response.status_code == 422


async def test_an_admin_changes_an_endpoint_and_rotates_its_secret(fast: Settings) -> None:
    port = _free_port()
    receiver = Receiver()
    new_secret = "fedcba9876543210-the-new-secret"
    async with listening(receiver, port), running_api(fast) as api:
        seeded = await _seed(api)
        await _wait_for(lambda: _events_made(api, 4))
        admin = api.auth(Role.ADMIN)
        endpoint = (
            await api.http.post(
                "/v1/notifications/endpoints",
                json={"url": f"http://127.0.0.1:{port}/old", "secret": SECRET},
                headers=admin,
            )
        ).json()
        path = f"/v1/notifications/endpoints/{endpoint['id']}"
        await _add_outcomes(api, seeded, [(0, "complaint")])
        await _wait_for(lambda: _all_delivered(api, 1))

        # The receiver accepts the new secret from now on; the endpoint is changed to match.
        receiver.secret = new_secret
        changed = await api.http.patch(
            path,
            json={
                "secret": new_secret,
                "url": f"http://127.0.0.1:{port}/new",
                "event_types": ["risk_flag"],
            },
            headers=admin,
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["url"].endswith("/new")
        assert changed.json()["event_types"] == ["risk_flag"]
        assert "secret" not in changed.json()
        await _add_outcomes(api, seeded, [(1, "complaint"), (1, "risk_flag")])
        await _wait_for(lambda: _all_delivered(api, 2))
        assert [e["type"] for e in receiver.accepted] == ["complaint", "risk_flag"]
        assert receiver.bad_signatures == 0

        before = (await api.http.get("/v1/notifications/endpoints", headers=admin)).json()
        for bad in (
            {},
            {"secret": None},
            {"secret": "short"},
            {"url": "ftp://x"},
            {"event_types": ["gossip"]},
            {"active": True, "colour": "red"},
        ):
            response = await api.http.patch(path, json=bad, headers=admin)
            assert response.status_code == 422, (bad, response.text)
        unknown = await api.http.patch(
            "/v1/notifications/endpoints/999999", json={"active": True}, headers=admin
        )
        assert unknown.status_code == 404
        after = (await api.http.get("/v1/notifications/endpoints", headers=admin)).json()
        assert after == before

        assert (await api.http.delete(path, headers=admin)).status_code == 204
        back = await api.http.patch(path, json={"active": True}, headers=admin)
        assert back.json()["active"] is True
        audit = await api.http.get(
            "/v1/audit", params={"target_type": "notification_endpoint"}, headers=admin
        )
    actions = [e["action"] for e in audit.json()["items"]]
    assert actions.count("notifications.endpoint_change") == 2
    assert new_secret not in audit.text and SECRET not in audit.text


def test_the_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k" * 16, b"1700000000.{}", hashlib.sha256).hexdigest()
    assert signature("k" * 16, 1700000000, b"{}") == f"sha256={expected}"


async def _failed(api: Api, n: int) -> bool:
    return len(await _deliveries(api, status="failed")) == n


async def test_deliveries_given_up_on_are_sent_again_when_an_admin_asks(fast: Settings) -> None:
    """The receiver is down for longer than the give-up window: every delivery fails for good.
    Once it is back, one request queues them again, each with a fresh window of retries."""
    port = _free_port()
    # A one-second window: with retries every 0.05-0.2 s, a few attempts each, then given up.
    brief = fast.model_copy(update={"notification_give_up_hours": 1 / 3600})
    receiver = Receiver(failures=3)
    given_up = REGISTRY.get_sample_value("voicebot_notifications_given_up_total") or 0.0
    async with running_api(brief) as api:
        seeded = await _seed(api)
        await _wait_for(lambda: _events_made(api, 4))
        endpoint = (
            await api.http.post(
                "/v1/notifications/endpoints",
                json={"url": f"http://127.0.0.1:{port}/hook", "secret": SECRET},
                headers=api.auth(Role.ADMIN),
            )
        ).json()
        await _add_outcomes(api, seeded, KINDS)
        await _wait_for(lambda: _failed(api, 8))
        assert REGISTRY.get_sample_value("voicebot_notifications_given_up_total") == given_up + 8
        path = f"/v1/notifications/endpoints/{endpoint['id']}/redeliver"
        for role in (Role.ANALYST, Role.OPERATOR):
            refused = await api.http.post(path, headers=api.auth(role))
            assert refused.status_code == 403
        later = await api.http.post(
            path, params={"since": "2099-01-01T00:00:00Z"}, headers=api.auth(Role.ADMIN)
        )
        assert later.json() == {"redelivered": 0}
        async with listening(receiver, port):
            # The receiver's first three answers fail again: retried, not given up at once
            # (the window runs from the redelivery, not from the events' creation).
            again = await api.http.post(path, headers=api.auth(Role.ADMIN))
            assert again.status_code == 200, again.text
            assert again.json() == {"redelivered": 8}
            await _wait_for(lambda: _all_delivered(api, 8))
        delivered = await _deliveries(api, status="delivered")
        audit = await api.http.get(
            "/v1/audit",
            params={"target_type": "notification_endpoint"},
            headers=api.auth(Role.ADMIN),
        )
    assert receiver.refused == 3
    assert receiver.bad_signatures == 0
    ids = [e["id"] for e in receiver.accepted]
    assert sorted(ids) == sorted(d["event_id"] for d in delivered)
    assert len(ids) == len(set(ids)) == 8
    by_contact: dict[int, list[int]] = {}
    for event in receiver.accepted:
        by_contact.setdefault(event["contact_id"], []).append(event["id"])
    assert all(events == sorted(events) for events in by_contact.values())
    redeliveries = [e for e in audit.json()["items"] if e["action"].endswith("redeliver_failed")]
    assert [e["details"]["redelivered"] for e in redeliveries] == [8, 0]


async def test_one_delivery_is_sent_again_and_what_cannot_be_is_refused(
    settings: Settings,
) -> None:
    """The rules, with the worker off so that nothing moves underneath: a pending delivery, an
    unknown one and one to a deactivated endpoint are refused and left as they were."""
    quiet = settings.model_copy(update={"notifications_enabled": False})
    async with running_api(quiet) as api:
        endpoint = (
            await api.http.post(
                "/v1/notifications/endpoints",
                json={"url": "http://127.0.0.1:9/hook", "secret": SECRET},
                headers=api.auth(Role.ADMIN),
            )
        ).json()
        made = datetime.now(UTC) - timedelta(days=5)
        async with api.sessionmaker() as session:
            event_id = await enqueue(
                session,
                source_key="test:1",
                event_type="risk_flag",
                contact_id=None,
                payload={"flag": "hardship"},
                now=made,
            )
            await session.commit()
        [pending] = await _deliveries(api)
        assert pending["event_id"] == event_id
        path = f"/v1/notifications/deliveries/{pending['id']}/redeliver"

        still = await api.http.post(path, headers=api.auth(Role.ADMIN))
        assert still.status_code == 409
        assert still.json()["detail"]["error"] == "pending"
        assert await _deliveries(api) == [pending]

        async with api.sessionmaker() as session:
            await session.execute(
                update(NotificationDelivery)
                .where(NotificationDelivery.id == pending["id"])
                .values(status="failed", attempts=7, last_error="HTTP 503")
            )
            await session.commit()
        assert (await api.http.post(path, headers=api.auth(Role.ANALYST))).status_code == 403
        again = await api.http.post(path, headers=api.auth(Role.ADMIN))
        assert again.status_code == 200, again.text
        body = again.json()
        assert (body["status"], body["attempts"], body["event_id"]) == ("pending", 0, event_id)
        async with api.sessionmaker() as session:
            row = await session.get(NotificationDelivery, pending["id"])
            assert row is not None
            # Due now, and given up only a whole window after now, not after the event's age.
            assert row.queued_at > made + timedelta(days=4)
            assert row.next_attempt_at == row.queued_at
            assert row.created_at == made

        unknown = await api.http.post(
            "/v1/notifications/deliveries/999999/redeliver", headers=api.auth(Role.ADMIN)
        )
        assert unknown.status_code == 404
        no_endpoint = await api.http.post(
            "/v1/notifications/endpoints/999999/redeliver", headers=api.auth(Role.ADMIN)
        )
        assert no_endpoint.status_code == 404
        naive = await api.http.post(
            f"/v1/notifications/endpoints/{endpoint['id']}/redeliver",
            params={"since": "2026-01-01T00:00:00"},
            headers=api.auth(Role.ADMIN),
        )
        assert naive.status_code == 422

        async with api.sessionmaker() as session:
            await session.execute(
                update(NotificationDelivery)
                .where(NotificationDelivery.id == pending["id"])
                .values(status="failed")
            )
            await session.commit()
        gone = await api.http.delete(
            f"/v1/notifications/endpoints/{endpoint['id']}", headers=api.auth(Role.ADMIN)
        )
        assert gone.status_code == 204
        before = await _deliveries(api)
        for refused_path in (path, f"/v1/notifications/endpoints/{endpoint['id']}/redeliver"):
            refused = await api.http.post(refused_path, headers=api.auth(Role.ADMIN))
            assert refused.status_code == 409
            assert refused.json()["detail"]["error"] == "endpoint_inactive"
        assert await _deliveries(api) == before

        audit = await api.http.get(
            "/v1/audit",
            params={"target_type": "notification_delivery"},
            headers=api.auth(Role.ADMIN),
        )
    assert [(e["action"], e["target_id"]) for e in audit.json()["items"]] == [
        ("notifications.redeliver", str(pending["id"]))
    ]


async def test_a_late_answer_does_not_undo_a_later_attempt(settings: Settings) -> None:
    """A sender whose lease ran out while it waited answers while another sender has the same
    delivery on its way: its failure (given up) is not recorded, and the delivery is."""
    quiet = settings.model_copy(update={"notifications_enabled": False})
    async with running_api(quiet) as api:
        await api.http.post(
            "/v1/notifications/endpoints",
            json={"url": "http://127.0.0.1:9/hook", "secret": SECRET},
            headers=api.auth(Role.ADMIN),
        )
        now = datetime.now(UTC)
        lease = timedelta(seconds=30)
        async with api.sessionmaker() as session:
            await enqueue(
                session,
                source_key="test:late",
                event_type="complaint",
                contact_id=None,
                payload={},
                now=now,
            )
            await session.commit()
        async with api.sessionmaker() as session:
            [first] = await claim_due(session, now=now, lease=lease, limit=10)
        async with api.sessionmaker() as session:
            assert await claim_due(session, now=now + lease / 2, lease=lease, limit=10) == []
        async with api.sessionmaker() as session:
            [second] = await claim_due(session, now=now + lease * 2, lease=lease, limit=10)
        assert (first.attempt, second.attempt) == (1, 2)
        # The first sender's request times out while the second's is still on its way.
        async with api.sessionmaker() as session:
            assert not await mark_failed_attempt(
                session, first, error="ReadTimeout", status_code=None, retry_at=None
            )
        async with api.sessionmaker() as session:
            assert await mark_delivered(
                session, second, status_code=204, latency_ms=3.0, now=now + lease * 2
            )
        [delivery] = await _deliveries(api)
    assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == (
        "delivered",
        2,
        None,
    )
