"""``/v1/notifications``: the endpoints that receive signed events (admins), and every delivery
made or still owed (readable by analysts: events name loans and contacts, never numbers).
Admins can have a delivery made again: one, or every one given up on for an endpoint."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from sqlalchemy import select

from voicebot.api.auth import Admin, Analyst, Principal
from voicebot.api.deps import SessionDep
from voicebot.api.errors import api_error, documented, not_found
from voicebot.api.result_schemas import decode_cursor, encode_cursor, shown_data
from voicebot.db import audit
from voicebot.db.models import NotificationDelivery, NotificationEndpoint, NotificationEvent
from voicebot.db.notifications import (
    NotRedeliverable,
    list_deliveries,
    redeliver,
    redeliver_failed,
)

router = APIRouter(
    prefix="/v1/notifications", tags=["notifications"], responses=documented(401, 403)
)


class EventType(StrEnum):
    RISK_FLAG = "risk_flag"
    COMPLAINT = "complaint"
    OPT_OUT = "opt_out"
    BROKEN_PROMISE = "broken_promise"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class EndpointIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://risk.example.com/voicebot-events",
                    "secret": "a-long-random-shared-secret",
                    "event_types": ["risk_flag", "complaint"],
                }
            ]
        },
    )

    url: AnyHttpUrl
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] = Field(
        description="The HMAC-SHA256 key; never shown again"
    )
    event_types: list[EventType] = Field(
        default_factory=list, description="What to send; empty means every type"
    )


class EndpointPatch(BaseModel):
    """What to change; what is left out stays as it is."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"secret": "the-receiver's-new-shared-secret"},
                {"event_types": ["risk_flag"], "active": True},
            ]
        },
    )

    url: AnyHttpUrl | None = None
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] | None = Field(
        default=None, description="A new HMAC-SHA256 key, for the attempts from now on"
    )
    event_types: list[EventType] | None = Field(
        default=None, description="What to send from now on; empty means every type"
    )
    active: bool | None = Field(default=None, description="false stops new events; true resumes")

    @model_validator(mode="after")
    def _something(self) -> EndpointPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one of url, secret, event_types, active")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class EndpointOut(BaseModel):
    id: int
    url: str
    event_types: list[str]
    active: bool
    created_at: datetime


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    event_type: str
    contact_id: int | None
    endpoint_id: int
    status: str = Field(description="pending, delivered or failed (given up)")
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    response_status: int | None
    latency_ms: float | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class Redelivered(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"redelivered": 42}]})

    redelivered: int = Field(description="Deliveries queued again, due now")


def _endpoint_out(endpoint: NotificationEndpoint) -> EndpointOut:
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        event_types=list(endpoint.event_types or []),
        active=endpoint.active,
        created_at=endpoint.created_at,
    )


@router.post(
    "/endpoints",
    response_model=EndpointOut,
    status_code=status.HTTP_201_CREATED,
    responses=documented(422),
)
async def create_endpoint(body: EndpointIn, principal: Admin, session: SessionDep) -> EndpointOut:
    """Events from now on go to this URL too, signed with its secret."""
    now = datetime.now(UTC)
    endpoint = NotificationEndpoint(
        url=str(body.url),
        secret=body.secret,
        event_types=sorted({e.value for e in body.event_types}),
        active=True,
        created_at=now,
    )
    session.add(endpoint)
    await session.flush()
    audit.record(
        session,
        actor=principal.actor,
        action="notifications.endpoint_create",
        target_type="notification_endpoint",
        target_id=str(endpoint.id),
        details={"url": endpoint.url, "event_types": endpoint.event_types},
        now=now,
    )
    await session.commit()
    return _endpoint_out(endpoint)


@router.get("/endpoints", response_model=list[EndpointOut])
async def list_endpoints(_: Admin, session: SessionDep) -> list[EndpointOut]:
    rows = await session.scalars(select(NotificationEndpoint).order_by(NotificationEndpoint.id))
    return [_endpoint_out(e) for e in rows]


@router.patch(
    "/endpoints/{endpoint_id}", response_model=EndpointOut, responses=documented(404, 422)
)
async def change_endpoint(
    endpoint_id: int, body: EndpointPatch, principal: Admin, session: SessionDep
) -> EndpointOut:
    """Change where events go, what is sent or the secret they are signed with (say to rotate
    it: have the receiver accept both, change it here, then retire the old one), or reactivate
    the endpoint. Every attempt from now on, retries of earlier events included, uses the new
    values. The secret is never shown, nor written in the audit log."""
    endpoint = await session.get(NotificationEndpoint, endpoint_id)
    if endpoint is None:
        raise not_found("notification endpoint", endpoint_id)
    changed: dict[str, Any] = {}
    if body.url is not None:
        endpoint.url = changed["url"] = str(body.url)
    if body.secret is not None:
        endpoint.secret = body.secret
        changed["secret"] = "changed"
    if body.event_types is not None:
        endpoint.event_types = changed["event_types"] = sorted({e.value for e in body.event_types})
    if body.active is not None:
        endpoint.active = changed["active"] = body.active
    audit.record(
        session,
        actor=principal.actor,
        action="notifications.endpoint_change",
        target_type="notification_endpoint",
        target_id=str(endpoint_id),
        details=changed,
        now=datetime.now(UTC),
    )
    await session.commit()
    return _endpoint_out(endpoint)


@router.delete(
    "/endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, responses=documented(404)
)
async def deactivate_endpoint(endpoint_id: int, principal: Admin, session: SessionDep) -> None:
    """No new events go to it; deliveries already owed to it are still made."""
    endpoint = await session.get(NotificationEndpoint, endpoint_id)
    if endpoint is None:
        raise not_found("notification endpoint", endpoint_id)
    endpoint.active = False
    audit.record(
        session,
        actor=principal.actor,
        action="notifications.endpoint_deactivate",
        target_type="notification_endpoint",
        target_id=str(endpoint_id),
        details={},
        now=datetime.now(UTC),
    )
    await session.commit()


@router.post(
    "/endpoints/{endpoint_id}/redeliver",
    response_model=Redelivered,
    responses=documented(404, 409, 422),
)
async def redeliver_failed_deliveries(
    endpoint_id: int,
    principal: Admin,
    session: SessionDep,
    since: Annotated[
        AwareDatetime | None, Query(description="Only deliveries made at or after this")
    ] = None,
) -> Redelivered:
    """Queue again every delivery to this endpoint that was given up on (say the receiver was
    down for longer than the give-up window): each is due now, with a fresh window of retries,
    and goes out before its contact's later events."""
    now = datetime.now(UTC)
    try:
        count = await redeliver_failed(session, endpoint_id, since=since, now=now)
    except NotRedeliverable as exc:
        raise api_error(409, exc.code, str(exc)) from None
    if count is None:
        raise not_found("notification endpoint", endpoint_id)
    audit.record(
        session,
        actor=principal.actor,
        action="notifications.redeliver_failed",
        target_type="notification_endpoint",
        target_id=str(endpoint_id),
        details={"redelivered": count, "since": None if since is None else since.isoformat()},
        now=now,
    )
    await session.commit()
    return Redelivered(redelivered=count)


@router.get("/deliveries", response_model=DeliveryPage, responses=documented(422))
async def read_deliveries(
    principal: Analyst,
    session: SessionDep,
    delivery_status: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    event_type: EventType | None = None,
    contact_id: int | None = None,
    endpoint_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> DeliveryPage:
    """Newest first."""
    rows = await list_deliveries(
        session,
        limit=limit + 1,
        before_id=decode_cursor(cursor),
        status=None if delivery_status is None else delivery_status.value,
        event_type=None if event_type is None else event_type.value,
        contact_id=contact_id,
        endpoint_id=endpoint_id,
    )
    page = rows[:limit]
    return DeliveryPage(
        items=[_delivery_out(d, e, principal) for d, e in page],
        next_cursor=encode_cursor(page[-1][0].id) if len(rows) > limit else None,
    )


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    responses=documented(404, 409, 422),
)
async def redeliver_delivery(
    delivery_id: int, principal: Admin, session: SessionDep
) -> DeliveryOut:
    """Queue a failed or delivered delivery again, due now with a fresh window of retries (say
    the receiver lost what it was sent). The event keeps its id, so a receiver that already has
    it can tell. 409 while it is still pending, or when its endpoint is deactivated."""
    now = datetime.now(UTC)
    try:
        delivery = await redeliver(session, delivery_id, now=now)
    except NotRedeliverable as exc:
        raise api_error(409, exc.code, str(exc)) from None
    if delivery is None:
        raise not_found("notification delivery", delivery_id)
    event = await session.get(NotificationEvent, delivery.event_id)
    assert event is not None  # a delivery's event is deleted only with it
    audit.record(
        session,
        actor=principal.actor,
        action="notifications.redeliver",
        target_type="notification_delivery",
        target_id=str(delivery_id),
        details={"event_id": event.id, "endpoint_id": delivery.endpoint_id},
        now=now,
    )
    await session.commit()
    return _delivery_out(delivery, event, principal)


def _delivery_out(
    d: NotificationDelivery, e: NotificationEvent, principal: Principal
) -> DeliveryOut:
    payload = dict(e.payload)
    if isinstance(payload.get("data"), dict):
        # What the endpoint is sent whole, analysts see as they see the outcome it came from.
        payload["data"] = shown_data(principal, payload["data"], None)
    return DeliveryOut(
        id=d.id,
        event_id=e.id,
        event_type=e.type,
        contact_id=e.contact_id,
        endpoint_id=d.endpoint_id,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_error=d.last_error,
        response_status=d.response_status,
        latency_ms=d.latency_ms,
        created_at=d.created_at,
        delivered_at=d.delivered_at,
        payload=payload,
    )
