"""A media stream from its first message: bind it to its call, then run the call's session.

Twilio opens the websocket, sends ``connected`` then ``start``; ``start`` carries the
``<Parameter>``s of the answer TwiML: the call id and the stream token. The stream is refused,
before any audio is processed, when the token is missing, forged or expired, when the call
already has a stream, or when anything but ``connected``/``start`` comes first. A refusal is
recorded on the call the stream named, if there is one.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from voicebot.calls import records
from voicebot.calls.dialogs import DialogNotFound
from voicebot.calls.services import CallServices
from voicebot.calls.session import CallSession, MediaTransport
from voicebot.calls.tokens import StreamTokenRefused, check_stream_token
from voicebot.dialog import DialogInvalid
from voicebot.telephony.media import Connected, MediaProtocolError, Start, parse_inbound

log = logging.getLogger(__name__)

# Twilio sends ``connected`` and ``start`` as soon as the socket opens.
START_TIMEOUT_SECONDS = 10.0
CALL_ID_PARAMETER = "call_id"
TOKEN_PARAMETER = "token"
ANSWERED_BY_PARAMETER = "answered_by"
LANGUAGE_PARAMETER = "language"

# Websocket close codes: 1008 policy violation (not this call's stream), 1002 protocol error.
_REFUSED = 1008
_PROTOCOL = 1002
_UNAVAILABLE = 1011


class _Refusal(Exception):
    def __init__(self, code: str, message: str, close_code: int = _REFUSED) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


async def serve_media_stream(services: CallServices, transport: MediaTransport) -> None:
    """Run one websocket from its first message to its end. Never raises for what it receives."""
    try:
        start = await _await_start(transport)
    except _Refusal as refusal:
        log.warning("media stream refused before start: %s: %s", refusal.code, refusal.message)
        await transport.close(refusal.close_code, refusal.code)
        return
    call_id = _call_id(start)
    try:
        session = await _bind(services, start, call_id, transport)
    except _Refusal as refusal:
        log.warning(
            "media stream %s refused (call %s): %s: %s",
            start.stream_sid,
            call_id,
            refusal.code,
            refusal.message,
        )
        if call_id is not None:
            await _record_refusal(services, call_id, refusal)
        if refusal.code == "dialog_unavailable":
            # The stream was this call's own: without a dialog there is nothing to say on it.
            services.spawn(_hang_up(services, start.call_sid), name=f"hangup-{start.call_sid}")
        await transport.close(refusal.close_code, refusal.code)
        return
    await session.run()


async def _await_start(transport: MediaTransport) -> Start:
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while True:
                text = await transport.receive_text()
                if text is None:
                    raise _Refusal("stream_dropped", "the socket closed before start", _PROTOCOL)
                event = parse_inbound(text)
                if isinstance(event, Connected):
                    continue
                if isinstance(event, Start):
                    return event
                raise _Refusal(
                    "out_of_order",
                    f"{type(event).__name__.lower()!r} before 'start'",
                    _PROTOCOL,
                )
    except TimeoutError:
        raise _Refusal(
            "no_start", f"no start within {START_TIMEOUT_SECONDS:g} s", _PROTOCOL
        ) from None
    except MediaProtocolError as exc:
        raise _Refusal("bad_message", str(exc), _PROTOCOL) from None


def _call_id(start: Start) -> int | None:
    raw = start.custom_parameters.get(CALL_ID_PARAMETER, "")
    if not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


async def _bind(
    services: CallServices, start: Start, call_id: int | None, transport: MediaTransport
) -> CallSession:
    if call_id is None:
        raise _Refusal("no_call", f"start names no call (parameter {CALL_ID_PARAMETER!r})")
    token = start.custom_parameters.get(TOKEN_PARAMETER)
    try:
        check_stream_token(
            services.settings.twilio_auth_tokens, call_id, token, now=datetime.now(UTC)
        )
    except StreamTokenRefused as exc:
        raise _Refusal(f"token_{exc.problem.value}", str(exc)) from None
    async with services.sessionmaker() as session:
        setup = await records.load_setup(session, call_id)
        if setup is None:
            raise _Refusal("no_call", f"call {call_id} does not exist")
        if setup.carrier_sid is not None and setup.carrier_sid != start.call_sid:
            raise _Refusal("wrong_call", "the stream's callSid is not the call's")
        if not await records.claim_stream(session, call_id, start.stream_sid):
            raise _Refusal("stream_reused", "the call already has a media stream")
    try:
        dialog = await services.dialogs.get(setup.dialog_id)
    except (DialogNotFound, DialogInvalid) as exc:
        raise _Refusal("dialog_unavailable", str(exc), _UNAVAILABLE) from None
    answered_by = start.custom_parameters.get(ANSWERED_BY_PARAMETER) or None
    return CallSession(services, setup, dialog, start, transport, answered_by=answered_by)


async def _record_refusal(services: CallServices, call_id: int, refusal: _Refusal) -> None:
    try:
        async with services.sessionmaker() as session:
            await records.record_stream_error(session, call_id, refusal.code, refusal.message)
    except Exception:
        log.exception("call %s: the stream refusal was not recorded", call_id)


async def _hang_up(services: CallServices, call_sid: str) -> None:
    try:
        await services.carrier.hang_up(call_sid)
    except Exception:
        log.exception("call %s: the carrier did not hang up", call_sid)
