"""A carrier that behaves like Twilio from the service's side, without a telephone network.

``place_call`` answers at once with a Twilio-style CallSid; a background task then plays the call
out and posts signed, form-encoded status callbacks to the request's ``status_callback_url`` over
real HTTP, with the fields, order and signature Twilio uses. How the call goes depends on a persona:
``request.metadata["persona"]`` when given, else one derived from the number, so an unlabelled list
still produces a realistic mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import httpx

from voicebot.config import Settings
from voicebot.domain.campaigns import MachineDetection
from voicebot.domain.phones import mask_phone
from voicebot.domain.types import CallStatus
from voicebot.telephony.carrier import CarrierError, DialRequest
from voicebot.telephony.signatures import SIGNATURE_HEADER, TwilioSignature

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
# Twilio's magic test number: used as the caller id when the request names none.
DEFAULT_FROM = "+15005550006"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# One post plus retries; the waits between tries, in seconds.
_RETRY_WAITS = (0.25, 0.5, 1.0)


class Persona(StrEnum):
    ANSWERS = "answers"  # a person picks up and talks for a while
    HANGS_UP = "hangs_up"  # a person picks up and hangs up within two seconds
    VOICEMAIL = "voicemail"  # an answering machine picks up; AMD reports the beep
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILS = "fails"  # the network cannot complete the call


# The mix an unlabelled list gets, in percent: roughly what outbound collection lists see.
DEFAULT_MIX: Sequence[tuple[Persona, int]] = (
    (Persona.ANSWERS, 45),
    (Persona.NO_ANSWER, 20),
    (Persona.VOICEMAIL, 15),
    (Persona.BUSY, 10),
    (Persona.HANGS_UP, 5),
    (Persona.FAILS, 5),
)


def persona_for(request: DialRequest) -> Persona:
    """The persona the request names, else the one its number maps to in ``DEFAULT_MIX``.

    ``answers:<name>`` names the scripted borrower the voice plays (see ``voice_personas``).
    """
    named = request.metadata.get("persona", "").partition(":")[0]
    named = named.strip().lower().replace("-", "_").replace(" ", "_")
    if named:
        try:
            return Persona(named)
        except ValueError:
            log.warning("call %s: unknown persona %r, using the mix", request.call_id, named)
    bucket = int.from_bytes(hashlib.sha256(request.to.encode()).digest()[:4], "big") % 100
    for persona, share in DEFAULT_MIX:
        if bucket < share:
            return persona
        bucket -= share
    return Persona.ANSWERS


@dataclass(frozen=True, slots=True)
class Step:
    """One status callback: wait ``wait`` seconds, then report ``status``."""

    wait: float
    status: CallStatus
    answered_by: str | None = None
    duration: int | None = None  # CallDuration, on final events


def script(
    persona: Persona, *, ring_seconds: float, talk_seconds: float, talk_duration: int
) -> list[Step]:
    """The callbacks a call with this persona produces, in the order Twilio sends them.

    ``talk_duration`` is the CallDuration reported for a real conversation; the simulation itself
    only waits ``talk_seconds``, so demos stay fast while the numbers look like real calls.
    """
    if persona is Persona.FAILS:
        return [
            Step(0, CallStatus.INITIATED),
            Step(ring_seconds, CallStatus.FAILED, duration=0),
        ]
    ringing = [Step(0, CallStatus.INITIATED), Step(0, CallStatus.RINGING)]
    if persona is Persona.BUSY:
        return [*ringing, Step(ring_seconds, CallStatus.BUSY, duration=0)]
    if persona is Persona.NO_ANSWER:
        return [*ringing, Step(ring_seconds, CallStatus.NO_ANSWER, duration=0)]
    if persona is Persona.ANSWERS:
        return [
            *ringing,
            Step(ring_seconds, CallStatus.IN_PROGRESS, "human"),
            Step(talk_seconds, CallStatus.COMPLETED, "human", talk_duration),
        ]
    if persona is Persona.HANGS_UP:
        return [
            *ringing,
            Step(ring_seconds, CallStatus.IN_PROGRESS, "human"),
            Step(talk_seconds / 4, CallStatus.COMPLETED, "human", 2),
        ]
    # Voicemail: the greeting plays, the beep is detected, and the call ends after a message.
    return [
        *ringing,
        Step(ring_seconds, CallStatus.IN_PROGRESS, "machine_end_beep"),
        Step(talk_seconds, CallStatus.COMPLETED, "machine_end_beep", 18),
    ]


@dataclass(slots=True)
class _LiveCall:
    sid: str
    request: DialRequest
    persona: Persona
    sequence: int = 0
    answered_at: float | None = None  # monotonic
    answered_by: str | None = None
    finished: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class CallVoice(Protocol):
    """What happens on an answered call's media stream (``simulated_voice.SimulatedVoice``)."""

    async def converse(self, call_sid: str, request: DialRequest, answered_by: str) -> None:
        """Hold the conversation; return when it is over. Cancelled when the call is hung up."""
        ...

    async def aclose(self) -> None: ...


class SimulatedCarrier:
    """The loopback carrier. Owns its HTTP client unless one is passed in.

    With a ``voice``, a call a person answers talks over its media stream until one side hangs
    up, instead of lasting ``simulated_talk_seconds``.
    """

    def __init__(
        self,
        settings: Settings,
        http_client: httpx.AsyncClient | None = None,
        *,
        voice: CallVoice | None = None,
    ) -> None:
        self._settings = settings
        self._voice = voice
        self._signature = TwilioSignature(settings.twilio_auth_token.get_secret_value())
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self._calls: dict[str, _LiveCall] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    async def place_call(self, request: DialRequest) -> str:
        if self._closed:
            raise CarrierError("the simulated carrier is closed", retryable=True)
        if not _E164.match(request.to):
            # Twilio's own code for a 'To' number it cannot dial.
            raise CarrierError("Invalid 'To' Phone Number", code="21211")
        sid = "CA" + uuid.uuid4().hex
        call = _LiveCall(sid=sid, request=request, persona=persona_for(request))
        if self._settings.simulated_dial_log:
            await asyncio.to_thread(
                _append_dial_log, self._settings.simulated_dial_log, call, os.getpid()
            )
        call.task = self._spawn(self._play(call), name=f"simulated-call-{sid}")
        self._calls[sid] = call
        log.info(
            "simulated call %s (call %s) to %s as %s",
            sid,
            request.call_id,
            mask_phone(request.to),
            call.persona.value,
        )
        return sid

    async def hang_up(self, carrier_sid: str) -> None:
        """Like Twilio's ``calls(sid).update(status=…)``: an answered call completes, a ringing one
        is canceled; the final status callback follows asynchronously."""
        call = self._calls.get(carrier_sid)
        if call is None or call.finished:
            log.debug("hang-up for %s: no live simulated call", carrier_sid)
            return
        call.finished = True
        if call.task is not None and not call.task.done():
            call.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await call.task
        if call.answered_at is not None:
            talked = math.ceil(time.monotonic() - call.answered_at)
            step = Step(0, CallStatus.COMPLETED, call.answered_by, max(talked, 1))
        else:
            step = Step(0, CallStatus.CANCELED, duration=0)
        self._spawn(self._post_final(call, step), name=f"simulated-hangup-{carrier_sid}")

    async def cancel(self, carrier_sid: str) -> None:
        """Like ``update(status="canceled")``: only a call nobody answered yet ends."""
        call = self._calls.get(carrier_sid)
        if call is None or call.finished or call.answered_at is not None:
            return
        await self.hang_up(carrier_sid)

    async def leave_message(self, carrier_sid: str, text: str, language: str) -> None:
        """The message is 'spoken' (no audio here) and the call completes, as with <Say><Hangup>."""
        log.debug("simulated message (%d chars, %s) on %s", len(text), language, carrier_sid)
        await self.hang_up(carrier_sid)

    async def aclose(self) -> None:
        self._closed = True
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._calls.clear()
        if self._voice is not None:
            await self._voice.aclose()
        if self._owns_client:
            await self._client.aclose()

    def _spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _play(self, call: _LiveCall) -> None:
        settings = self._settings
        steps = script(
            call.persona,
            ring_seconds=settings.simulated_ring_seconds,
            talk_seconds=settings.simulated_talk_seconds,
            talk_duration=_talk_duration(call.sid),
        )
        try:
            for step in steps:
                if step.wait and self._voice is not None and _converses(call, step):
                    await self._voice.converse(call.sid, call.request, call.answered_by or "")
                    talked = math.ceil(time.monotonic() - (call.answered_at or time.monotonic()))
                    step = replace(step, duration=max(talked, 1))
                elif step.wait:
                    await asyncio.sleep(step.wait)
                if step.status is CallStatus.IN_PROGRESS:
                    call.answered_at = time.monotonic()
                    call.answered_by = step.answered_by
                if step.status.is_final:
                    call.finished = True
                await self._post(call, step)
        finally:
            self._calls.pop(call.sid, None)

    async def _post_final(self, call: _LiveCall, step: Step) -> None:
        try:
            await self._post(call, step)
        finally:
            self._calls.pop(call.sid, None)

    async def _post(self, call: _LiveCall, step: Step) -> None:
        fields = self._fields(call, step)
        call.sequence += 1
        await self._deliver(call, call.request.status_callback_url, fields, step.status.value)
        if step.status is CallStatus.IN_PROGRESS and _detects_machines(call.request):
            # Asynchronous AMD: the result comes on its own callback, after the answer.
            self._spawn(self._post_amd(call), name=f"simulated-amd-{call.sid}")
        recorded = call.request.options.record and call.request.recording_callback_url
        if step.status is CallStatus.COMPLETED and call.answered_at is not None and recorded:
            self._spawn(
                self._post_recording(call, step.duration or 0),
                name=f"simulated-recording-{call.sid}",
            )

    async def _post_amd(self, call: _LiveCall) -> None:
        url = call.request.amd_callback_url
        assert url is not None
        fields = {
            "AccountSid": self._settings.twilio_account_sid,
            "AnsweredBy": call.answered_by or "unknown",
            "CallSid": call.sid,
            "MachineDetectionDuration": "2400",
        }
        await self._deliver(call, url, fields, "amd")

    async def _post_recording(self, call: _LiveCall, duration: int) -> None:
        url = call.request.recording_callback_url
        assert url is not None
        account = self._settings.twilio_account_sid
        recording_sid = "RE" + hashlib.sha256(call.sid.encode()).hexdigest()[:32]
        fields = {
            "AccountSid": account,
            "CallSid": call.sid,
            "RecordingChannels": "1",
            "RecordingDuration": str(max(duration, 1)),
            "RecordingSid": recording_sid,
            "RecordingSource": "OutboundAPI",
            "RecordingStatus": "completed",
            "RecordingUrl": (
                f"https://api.twilio.com/{API_VERSION}/Accounts/{account}/Recordings/"
                f"{recording_sid}"
            ),
        }
        await self._deliver(call, url, fields, "recording")

    async def _deliver(self, call: _LiveCall, url: str, fields: dict[str, str], what: str) -> None:
        """POST a signed callback, retried on 5xx and transport errors as Twilio does."""
        headers = {
            SIGNATURE_HEADER: self._signature.sign(url, fields),
            "User-Agent": "TwilioProxy/1.1 (voicebot simulated carrier)",
        }
        problem = ""
        for attempt, wait in enumerate((0.0, *_RETRY_WAITS)):
            if wait:
                await asyncio.sleep(wait)
            try:
                response = await self._client.post(url, data=fields, headers=headers)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 500:
                if response.status_code >= 400:
                    log.warning(
                        "%s callback for %s (to %s) refused: HTTP %d",
                        what,
                        call.sid,
                        mask_phone(call.request.to),
                        response.status_code,
                    )
                return
            problem = f"HTTP {response.status_code}"
            log.debug(
                "%s callback for %s failed (try %d): %s", what, call.sid, attempt + 1, problem
            )
        log.warning(
            "%s callback for %s (to %s) undelivered after %d tries: %s",
            what,
            call.sid,
            mask_phone(call.request.to),
            len(_RETRY_WAITS) + 1,
            problem,
        )

    def _fields(self, call: _LiveCall, step: Step) -> dict[str, str]:
        request = call.request
        caller = request.from_ or DEFAULT_FROM
        fields = {
            "AccountSid": self._settings.twilio_account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": step.status.value,
            "Called": request.to,
            "Caller": caller,
            "CallbackSource": "call-progress-events",
            "Direction": "outbound-api",
            "From": caller,
            "SequenceNumber": str(call.sequence),
            "Timestamp": email.utils.format_datetime(datetime.now(UTC).replace(microsecond=0)),
            "To": request.to,
        }
        if step.answered_by is not None:
            fields["AnsweredBy"] = step.answered_by
        if step.duration is not None:
            fields["CallDuration"] = str(step.duration)
            # Twilio's Duration is billed minutes, rounded up.
            fields["Duration"] = str(math.ceil(step.duration / 60))
        return fields


def _detects_machines(request: DialRequest) -> bool:
    return (
        request.options.machine_detection is not MachineDetection.OFF
        and request.amd_callback_url is not None
    )


def _converses(call: _LiveCall, step: Step) -> bool:
    """The wait before a person's call completes is the conversation, when there is a voice."""
    return call.persona is Persona.ANSWERS and step.status.is_final


def _talk_duration(sid: str) -> int:
    """A plausible conversation length (45–240 s), stable per call."""
    return 45 + int(sid[-4:], 16) % 196


def _append_dial_log(path: str, call: _LiveCall, pid: int) -> None:
    """One JSON line per dial. O_APPEND with a single write keeps lines whole when several
    processes share the file."""
    callback_id = call.request.metadata.get("callback_id")
    record = {
        "at": datetime.now(UTC).isoformat(),
        "sid": call.sid,
        "call_id": call.request.call_id,
        "callback_id": int(callback_id) if callback_id and callback_id.isdigit() else callback_id,
        "to": call.request.to,
        "persona": call.persona.value,
        "pid": pid,
    }
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
