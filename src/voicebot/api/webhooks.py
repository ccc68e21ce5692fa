"""Twilio webhooks: call status, answering-machine results and recordings, signed with
X-Twilio-Signature (checked against ``VOICEBOT_PUBLIC_BASE_URL``, so it holds behind a proxy).

Twilio retries a callback it could not deliver and sends some events twice or out of order, so
every accepted event answers 200 — a repeat, or one for a call this service does not know, is
stored and acknowledged rather than refused — while a request that is not Twilio's (403) or not a
status callback (400) is refused before anything is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, Response, status

from voicebot.api.deps import SessionDep, SettingsDep
from voicebot.calls import records
from voicebot.calls.dialogs import DialogNotFound
from voicebot.calls.services import CallServices
from voicebot.config import Settings
from voicebot.dialer.lifecycle import (
    MachineAnswered,
    MachineEvent,
    RecordingEvent,
    StatusEvent,
    record_machine_event,
    record_recording_event,
)
from voicebot.dialer.recorder import StatusRecorder
from voicebot.dialog import (
    CallStarted,
    ContactDataError,
    DialogInvalid,
    Say,
    context_for,
    new_call,
    step,
)
from voicebot.domain.campaigns import MachineAction
from voicebot.domain.types import CallStatus
from voicebot.telephony.carrier import Carrier, CarrierError
from voicebot.telephony.signatures import SIGNATURE_HEADER, FormParams, TwilioSignature, public_url

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])

# An empty TwiML document: Twilio ignores the body of a status callback's answer, but accepts this.
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Twilio's status callbacks are well under 2 KB; the cap leaves room for future fields.
MAX_FORM_BYTES = 64 * 1024
_MAX_BIGINT = 2**63 - 1
_CALL_STATUSES = frozenset(s.value for s in CallStatus) - {CallStatus.INITIATING.value}


@router.post(
    "/status",
    summary="Twilio call status callback",
    response_class=Response,
    responses={
        200: {"content": {"text/xml": {}}, "description": "Accepted (also for a repeat)"},
        400: {"description": "A required field is missing or malformed"},
        403: {"description": "X-Twilio-Signature missing or wrong"},
        413: {"description": "The body is larger than a status callback can be"},
        415: {"description": "The body is not application/x-www-form-urlencoded"},
    },
)
async def twilio_status(request: Request) -> Response:
    """Answered once the event is stored and applied to its call (see ``StatusRecorder``)."""
    # The busiest route takes no dependencies: resolving even one costs it a few per cent.
    settings: Settings = request.app.state.settings
    pairs = await read_form(request)
    check_signature(request, FormParams(pairs), settings)

    fields = dict(pairs)  # a repeated field keeps its last value, as Starlette's forms do
    event = parse_status_event(fields, request.query_params.get("call_id"))
    recorder: StatusRecorder = request.app.state.status_recorder
    stored = await recorder.record(event, now=datetime.now(UTC))
    log.info(
        "status %s for %s (call %s)%s",
        event.call_status,
        event.call_sid,
        event.call_id,
        "" if stored else " (repeat, ignored)",
    )
    return Response(content=EMPTY_TWIML, media_type="text/xml")


_WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/xml": {}}, "description": "Accepted (also for a repeat)"},
    400: {"description": "A required field is missing or malformed"},
    403: {"description": "X-Twilio-Signature missing or wrong"},
    413: {"description": "The body is larger than a callback can be"},
    415: {"description": "The body is not application/x-www-form-urlencoded"},
}
ANSWERED_BY_VALUES = frozenset(
    {
        "human",
        "machine_start",
        "machine_end_beep",
        "machine_end_silence",
        "machine_end_other",
        "fax",
        "unknown",
    }
)


@router.post(
    "/amd",
    summary="Twilio asynchronous answering-machine detection result",
    response_class=Response,
    responses=_WEBHOOK_RESPONSES,
)
async def twilio_amd(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Stores who answered; for a machine on a live call, does what the campaign says: hang up,
    or leave the dialog's voicemail message (which never mentions the debt)."""
    pairs = await read_form(request)
    check_signature(request, FormParams(pairs), settings)
    event = parse_machine_event(dict(pairs), request.query_params.get("call_id"))
    answered = await record_machine_event(session, event, now=datetime.now(UTC))
    log.info("AMD %s for %s (call %s)", event.answered_by, event.call_sid, event.call_id)
    if answered is not None:
        await _handle_machine(request, answered)
    return Response(content=EMPTY_TWIML, media_type="text/xml")


@router.post(
    "/recording",
    summary="Twilio recording status callback",
    response_class=Response,
    responses=_WEBHOOK_RESPONSES,
)
async def twilio_recording(
    request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """A finished recording's sid, URL and duration go on its call."""
    pairs = await read_form(request)
    check_signature(request, FormParams(pairs), settings)
    event = parse_recording_event(dict(pairs), request.query_params.get("call_id"))
    stored = await record_recording_event(session, event, now=datetime.now(UTC))
    log.info(
        "recording %s %s for %s%s",
        event.recording_sid,
        event.recording_status,
        event.call_sid,
        "" if stored else " (repeat, ignored)",
    )
    return Response(content=EMPTY_TWIML, media_type="text/xml")


async def _handle_machine(request: Request, answered: MachineAnswered) -> None:
    """Hang up, or replace the call's TwiML with the voicemail message and a hang-up. A carrier
    failure is logged: the event is stored, and the call still ends (Twilio's time limit)."""
    carrier: Carrier = request.app.state.carrier
    try:
        if answered.action is MachineAction.LEAVE_MESSAGE:
            message = await _voicemail(request, answered)
            if message is not None:
                await carrier.leave_message(answered.carrier_sid, *message)
                return
        await carrier.hang_up(answered.carrier_sid)
    except CarrierError as exc:
        log.error(
            "call %s: the carrier refused to end the machine-answered call (code %s)",
            answered.call_id,
            exc.code,
        )


async def _voicemail(request: Request, answered: MachineAnswered) -> tuple[str, str] | None:
    """(text, language) of the dialog's voicemail for this call's borrower, rendered by the
    dialog engine itself; None (and the call is hung up) when the dialog cannot be used."""
    services: CallServices = request.app.state.calls
    try:
        dialog = await services.dialogs.get(answered.dialog_id)
        async with services.sessionmaker() as session:
            setup = await records.load_setup(session, answered.call_id)
        if setup is None:
            return None
        context = context_for(dialog.script, setup.contact)
    except (DialogNotFound, DialogInvalid, ContactDataError) as exc:
        log.error("call %s: no voicemail message (%s); hanging up", answered.call_id, exc)
        return None
    _, actions = step(
        new_call(dialog, context), CallStarted(at=datetime.now(UTC), answered_by="machine")
    )
    text = " ".join(action.text for action in actions if isinstance(action, Say))
    return (text, dialog.script.language) if text else None


def parse_machine_event(fields: Mapping[str, str], call_id: str | None) -> MachineEvent:
    call_sid = _call_sid(fields)
    answered_by = fields.get("AnsweredBy", "").strip()
    if not answered_by:
        raise _bad_field("AnsweredBy", "is required")
    if answered_by not in ANSWERED_BY_VALUES:
        raise _bad_field("AnsweredBy", f"{answered_by!r} is not a Twilio AnsweredBy value")
    return MachineEvent(
        call_sid=call_sid,
        answered_by=answered_by,
        call_id=_optional_int("call_id", call_id),
        detection_ms=_optional_int(
            "MachineDetectionDuration", fields.get("MachineDetectionDuration")
        ),
        payload=dict(fields),
    )


def parse_recording_event(fields: Mapping[str, str], call_id: str | None) -> RecordingEvent:
    call_sid = _call_sid(fields)
    recording_sid = fields.get("RecordingSid", "").strip()
    if not recording_sid:
        raise _bad_field("RecordingSid", "is required")
    if len(recording_sid) > 64:
        raise _bad_field("RecordingSid", "is longer than 64 characters")
    recording_status = fields.get("RecordingStatus", "").strip()
    if not recording_status:
        raise _bad_field("RecordingStatus", "is required")
    url = fields.get("RecordingUrl", "").strip() or None
    if url is not None and not url.startswith("https://"):
        raise _bad_field("RecordingUrl", "must be an https:// URL")
    return RecordingEvent(
        call_sid=call_sid,
        recording_sid=recording_sid,
        recording_status=recording_status,
        call_id=_optional_int("call_id", call_id),
        recording_url=url,
        duration_seconds=_optional_int("RecordingDuration", fields.get("RecordingDuration")),
        payload=dict(fields),
    )


def _call_sid(fields: Mapping[str, str]) -> str:
    call_sid = fields.get("CallSid", "").strip()
    if not call_sid:
        raise _bad_field("CallSid", "is required")
    if len(call_sid) > 64:
        raise _bad_field("CallSid", "is longer than 64 characters")
    return call_sid


async def read_form(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body as Twilio sent it, read with a size cap: the signature cannot be
    checked before the body is read, so an unsigned sender must not make us buffer much."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail={
                "error": "unsupported_media_type",
                "message": "status callbacks are application/x-www-form-urlencoded",
            },
        )
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                detail={
                    "error": "too_large",
                    "message": f"a status callback is at most {MAX_FORM_BYTES} bytes",
                },
            )
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise _bad_field("body", "is not a UTF-8 urlencoded form") from None


def check_signature(request: Request, params: FormParams, settings: Settings) -> None:
    """Refuse (403) a request not signed by Twilio for the public URL it was sent to."""
    url = public_url(
        settings.public_base_url,
        _app_path(request),
        request.scope.get("query_string", b"").decode("latin-1"),
    )
    signature = request.headers.get(SIGNATURE_HEADER)
    # The account's token first; the previous one only while a rotation lasts.
    if any(TwilioSignature(t).verify(url, params, signature) for t in settings.twilio_auth_tokens):
        return
    problem = "missing" if not signature else "invalid"
    client = request.client.host if request.client else "unknown"
    # The URL is ours and holds no secret; the signature and token are never logged.
    log.warning("refused webhook from %s: %s %s for %s", client, problem, SIGNATURE_HEADER, url)
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        detail={
            "error": "invalid_signature",
            "message": f"{SIGNATURE_HEADER} is {problem}: the request is not signed by the "
            f"carrier for {url}",
        },
    )


def parse_status_event(fields: Mapping[str, str], call_id: str | None) -> StatusEvent:
    """Read a status callback's form; 400 naming the field when one is missing or malformed."""
    call_sid = _call_sid(fields)
    call_status = fields.get("CallStatus", "").strip()
    if not call_status:
        raise _bad_field("CallStatus", "is required")
    if call_status not in _CALL_STATUSES:
        raise _bad_field("CallStatus", f"{call_status!r} is not a Twilio call status")
    return StatusEvent(
        call_sid=call_sid,
        call_status=call_status,
        call_id=_optional_int("call_id", call_id),
        answered_by=fields.get("AnsweredBy") or None,
        duration_seconds=_optional_int("CallDuration", fields.get("CallDuration")),
        sequence_number=_optional_int("SequenceNumber", fields.get("SequenceNumber")),
        payload=dict(fields),
    )


def _optional_int(name: str, raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise _bad_field(name, f"{raw!r} is not a whole number") from None
    if not 0 <= value <= _MAX_BIGINT:
        raise _bad_field(name, "is out of range")
    return value


def _bad_field(name: str, reason: str) -> HTTPException:
    detail: dict[str, Any] = {
        "error": "invalid_field",
        "field": name,
        "message": f"{name} {reason}",
    }
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail=detail)


def _app_path(request: Request) -> str:
    """The path inside the app. A proxy prefix (``root_path``) belongs to the public base URL."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path
