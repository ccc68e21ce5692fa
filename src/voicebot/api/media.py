"""Twilio media streams: the answer webhook that connects a call to its stream, and the stream.

``POST /webhooks/twilio/answer`` (signed like every Twilio webhook) answers with TwiML
``<Connect><Stream url="wss://…/media/twilio">`` whose ``<Parameter>``s name the call and carry a
short-lived token binding the stream to it. ``WS /media/twilio`` speaks Twilio's media-stream
protocol; ``voicebot.calls`` does the rest.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, Request, Response, WebSocket, status
from starlette.websockets import WebSocketState
from twilio.twiml.voice_response import Connect, VoiceResponse

from voicebot.api.deps import SettingsDep
from voicebot.api.webhooks import check_signature, read_form
from voicebot.calls import records
from voicebot.calls.dialogs import DialogNotFound
from voicebot.calls.services import CallServices
from voicebot.calls.stream import (
    ANSWERED_BY_PARAMETER,
    CALL_ID_PARAMETER,
    LANGUAGE_PARAMETER,
    TOKEN_PARAMETER,
    serve_media_stream,
)
from voicebot.calls.tokens import issue_stream_token
from voicebot.config import Settings
from voicebot.dialog import DialogInvalid
from voicebot.domain.types import CallStatus
from voicebot.telephony.media import MediaProtocolError
from voicebot.telephony.signatures import FormParams

log = logging.getLogger(__name__)

router = APIRouter(tags=["media"])

MEDIA_PATH = "/media/twilio"


@router.post(
    "/webhooks/twilio/answer",
    summary="Twilio answer webhook: connect the call to its media stream",
    response_class=Response,
    responses={
        200: {"content": {"text/xml": {}}, "description": "TwiML: the stream, or a hang-up"},
        400: {"description": "call_id missing or malformed"},
        403: {"description": "X-Twilio-Signature missing or wrong"},
        415: {"description": "The body is not application/x-www-form-urlencoded"},
    },
)
async def twilio_answer(request: Request, settings: SettingsDep) -> Response:
    pairs = await read_form(request)
    check_signature(request, FormParams(pairs), settings)
    fields = dict(pairs)
    raw_id = request.query_params.get("call_id", "").strip()
    if not raw_id.isdigit() or len(raw_id) > 18:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail={
                "error": "invalid_field",
                "field": "call_id",
                "message": "call_id must be the call's id (the answer URL's ?call_id=)",
            },
        )
    services: CallServices = request.app.state.calls
    twiml = await _answer(services, settings, int(raw_id), fields)
    return Response(content=twiml, media_type="text/xml")


async def _answer(
    services: CallServices, settings: Settings, call_id: int, fields: dict[str, str]
) -> str:
    async with services.sessionmaker() as session:
        setup = await records.load_setup(session, call_id)
    call_sid = fields.get("CallSid", "")
    if setup is None:
        log.warning("answer for unknown call %s: hanging up", call_id)
        return _hangup()
    if setup.carrier_sid is not None and call_sid and call_sid != setup.carrier_sid:
        log.warning("answer for call %s with another CallSid: hanging up", call_id)
        return _hangup()
    if CallStatus(setup.status).is_final:
        # Ended here already (say written off when the carrier never confirmed the dial, and
        # retried): talking now would be a second call the records do not show.
        log.warning("answer for call %s, which has ended (%s): hanging up", call_id, setup.status)
        return _hangup()
    try:
        dialog = await services.dialogs.get(setup.dialog_id)
    except (DialogNotFound, DialogInvalid) as exc:
        log.error("call %s: dialog %s unusable: %s", call_id, setup.dialog_id, exc)
        async with services.sessionmaker() as session:
            await records.record_stream_error(session, call_id, "dialog_unavailable", str(exc))
        return _hangup()
    services.prepare(dialog)
    token = issue_stream_token(
        settings.twilio_auth_token.get_secret_value(),
        call_id,
        now=datetime.now(UTC),
        ttl=timedelta(seconds=settings.media_stream_token_seconds),
    )
    parameters = {
        CALL_ID_PARAMETER: str(call_id),
        TOKEN_PARAMETER: token,
        LANGUAGE_PARAMETER: dialog.script.language,
    }
    if fields.get("AnsweredBy"):
        parameters[ANSWERED_BY_PARAMETER] = fields["AnsweredBy"]
    return stream_twiml(stream_url(settings.public_base_url), parameters)


def stream_url(public_base_url: str) -> str:
    """The websocket URL for the public base: wss:// behind https (as Twilio requires)."""
    scheme, rest = public_base_url.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest.rstrip("/") + MEDIA_PATH


def stream_twiml(url: str, parameters: dict[str, str]) -> str:
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def _hangup() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


@router.websocket(MEDIA_PATH)
async def media_stream(websocket: WebSocket) -> None:
    await websocket.accept()
    services: CallServices = websocket.app.state.calls
    await serve_media_stream(services, _Socket(websocket))


class _Socket:
    """A Starlette websocket as the call session's transport."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def receive_text(self) -> str | None:
        message = await self._websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            raise MediaProtocolError("a binary frame: media streams send JSON text frames")
        return str(text)

    async def send_text(self, text: str) -> None:
        await self._websocket.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        websocket = self._websocket
        if (
            websocket.client_state is WebSocketState.CONNECTED
            and websocket.application_state is WebSocketState.CONNECTED
        ):
            await websocket.close(code, reason)
