"""The Twilio carrier: calls placed, cancelled and ended through the twilio SDK's async path.

Every REST request goes through a ``twilio.http.AsyncHttpClient`` (by default the SDK's own
``AsyncTwilioHttpClient``, on aiohttp), so the event loop never waits on Twilio. Tests hand in
their own client and see the exact request the SDK builds. Twilio's refusals become
``CarrierError``s whose ``kind`` tells the dialer what to do next (``voicebot.dialer.refusals``).

Neither the auth token nor a phone number is ever logged: the SDK's request logging goes to a
logger kept at WARNING, and refusals are logged by code only (Twilio's messages quote the number).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from aiohttp import ClientConnectorError, ClientError
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from voicebot.config import Settings
from voicebot.domain.campaigns import MachineDetection
from voicebot.domain.phones import mask_phone
from voicebot.telephony.carrier import CarrierError, DialRequest, RefusalKind

log = logging.getLogger(__name__)

# The SDK logs every request's URL and headers at INFO; nothing there is needed in production.
_SDK_LOG = logging.getLogger("voicebot.telephony.twilio.sdk")
_SDK_LOG.setLevel(logging.WARNING)

STATUS_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
RECORDING_CALLBACK_EVENTS = ("completed", "absent")
# Updating a call that already ended: "not found" (20404) or "not in progress" (21220).
_ALREADY_ENDED = frozenset({20404, 21220})
# The request never got an answer (aiohttp is the twilio SDK's own async transport).
_TRANSPORT_ERRORS = (ClientError, OSError, TimeoutError)
# Of those, the ones raised before the request left: Twilio cannot have created anything.
_NOT_SENT = (ClientConnectorError, ConnectionRefusedError, socket.gaierror)


class TwilioCarrier:
    """Owns its HTTP client (and closes it) unless one is passed in."""

    def __init__(self, settings: Settings, http_client: AsyncHttpClient | None = None) -> None:
        self._settings = settings
        self._http = http_client
        self._owns_http = http_client is None
        self._client: Client | None = None
        self._default_callers = tuple(settings.twilio_caller_numbers)

    def _rest(self) -> Client:
        """The SDK client, built on first use: aiohttp sessions belong to the running loop."""
        if self._client is None:
            if self._http is None:
                from twilio.http.async_http_client import AsyncTwilioHttpClient

                self._http = AsyncTwilioHttpClient(
                    timeout=self._settings.twilio_http_timeout_seconds, logger=_SDK_LOG
                )
            self._client = Client(
                self._settings.twilio_account_sid,
                self._settings.twilio_auth_token.get_secret_value(),
                http_client=self._http,
            )
        return self._client

    async def place_call(self, request: DialRequest) -> str:
        caller = request.from_ or (self._default_callers[0] if self._default_callers else None)
        if caller is None:
            raise CarrierError(
                "no caller number: set the campaign's caller_numbers or "
                "VOICEBOT_TWILIO_CALLER_NUMBERS",
                kind=RefusalKind.MISCONFIGURED,
            )
        try:
            call = await self._rest().calls.create_async(**call_parameters(request, caller))
        except TwilioRestException as exc:
            error = carrier_error(exc)
            log.warning(
                "Twilio refused call %s to %s: HTTP %s, code %s (%s)",
                request.call_id,
                mask_phone(request.to),
                exc.status,
                error.code,
                error.kind.value,
            )
            raise error from None
        except _TRANSPORT_ERRORS as exc:
            raise _unreachable(exc) from None
        sid: str = call.sid
        return sid

    async def hang_up(self, carrier_sid: str) -> None:
        """``calls(sid).update(status="completed")``: ends the call whatever its state."""
        await self._update(carrier_sid, status="completed")

    async def cancel(self, carrier_sid: str) -> None:
        """``calls(sid).update(status="canceled")``: a queued or ringing call ends, an answered
        one goes on."""
        await self._update(carrier_sid, status="canceled")

    async def leave_message(self, carrier_sid: str, text: str, language: str) -> None:
        """Replace the call's TwiML with the message and a hang-up."""
        await self._update(carrier_sid, twiml=message_twiml(text, language))

    async def _update(self, carrier_sid: str, **fields: str) -> None:
        try:
            await self._rest().calls(carrier_sid).update_async(**fields)
        except TwilioRestException as exc:
            if exc.code in _ALREADY_ENDED:
                log.debug("update of %s: the call has already ended", carrier_sid)
                return
            raise carrier_error(exc) from None
        except _TRANSPORT_ERRORS as exc:
            raise _unreachable(exc) from None

    async def aclose(self) -> None:
        if self._owns_http and self._http is not None:
            close = getattr(self._http, "close", None)
            if close is not None:
                await close()
        self._client = None


def call_parameters(request: DialRequest, caller: str) -> dict[str, Any]:
    """``calls.create`` keyword arguments for a dial request: the whole REST request."""
    options = request.options
    parameters: dict[str, Any] = {
        "to": request.to,
        "from_": caller,
        "url": request.answer_url,
        "method": "POST",
        "status_callback": request.status_callback_url,
        "status_callback_event": list(STATUS_CALLBACK_EVENTS),
        "status_callback_method": "POST",
        "timeout": options.ring_timeout_seconds,
        "time_limit": options.time_limit_seconds,
        "record": options.record,
    }
    if options.machine_detection is not MachineDetection.OFF:
        if request.amd_callback_url is None:
            raise ValueError("answering-machine detection needs the request's amd_callback_url")
        parameters.update(
            machine_detection=options.machine_detection.value,
            async_amd="true",
            async_amd_status_callback=request.amd_callback_url,
            async_amd_status_callback_method="POST",
        )
    if options.record:
        if request.recording_callback_url is None:
            raise ValueError("recording needs the request's recording_callback_url")
        parameters.update(
            recording_status_callback=request.recording_callback_url,
            recording_status_callback_event=list(RECORDING_CALLBACK_EVENTS),
            recording_status_callback_method="POST",
        )
    return parameters


def message_twiml(text: str, language: str) -> str:
    response = VoiceResponse()
    response.say(text, language=language)
    response.hangup()
    return str(response)


def carrier_error(exc: TwilioRestException) -> CarrierError:
    """Twilio's refusal, verbatim (its code, else the HTTP status, and its message)."""
    code = str(exc.code) if exc.code is not None else None
    message = str(exc.msg or f"HTTP {exc.status}")
    return CarrierError(message, code=code, http_status=exc.status)


def _unreachable(exc: BaseException) -> CarrierError:
    """A transport failure: never sent (no connection), or sent with no answer read (a
    timeout, a dropped connection), in which case Twilio may have created the call."""
    if isinstance(exc, _NOT_SENT):
        return CarrierError(
            f"Twilio could not be reached: {type(exc).__name__}: {exc}",
            kind=RefusalKind.UNREACHABLE,
        )
    return CarrierError(
        f"no answer from Twilio, which may have placed the call: {type(exc).__name__}: {exc}",
        kind=RefusalKind.UNCONFIRMED,
    )
