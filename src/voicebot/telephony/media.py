"""Twilio media streams on the wire: JSON text frames ⇄ typed events. Pure: no sockets here.

Twilio sends ``connected``, ``start``, ``media``, ``dtmf``, ``mark`` and ``stop``; the service
sends ``media``, ``mark`` and ``clear``. Audio is base64 μ-law, 8 kHz, mono. The simulated carrier
uses the same module from the other side of the socket, so both ends agree by construction.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Twilio sends 20 ms frames (160 bytes); allow generous slack but refuse absurd frames.
MAX_MEDIA_PAYLOAD_BYTES = 16_000
MAX_MESSAGE_CHARS = 64_000


class MediaProtocolError(ValueError):
    """A frame that does not follow the media-stream protocol; the message says what and where."""


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    encoding: str
    sample_rate: int
    channels: int
    tracks: tuple[str, ...]
    custom_parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Media:
    stream_sid: str
    payload: bytes  # μ-law bytes
    track: str
    chunk: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Dtmf:
    stream_sid: str
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    stream_sid: str
    call_sid: str


@dataclass(frozen=True, slots=True)
class Clear:
    stream_sid: str


InboundEvent = Connected | Start | Media | Dtmf | Mark | Stop
OutboundEvent = Media | Mark | Clear

_DTMF_DIGITS = frozenset("0123456789*#")


def _load(text: str | bytes) -> dict[str, Any]:
    if len(text) > MAX_MESSAGE_CHARS:
        raise MediaProtocolError(f"frame of {len(text)} characters exceeds {MAX_MESSAGE_CHARS}")
    try:
        message = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MediaProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MediaProtocolError("frame is not a JSON object")
    return message


def _section(message: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = message.get(name)
    if not isinstance(value, dict):
        raise MediaProtocolError(f"{message.get('event')!r} frame lacks the {name!r} object")
    return value


def _text(section: Mapping[str, Any], key: str, where: str) -> str:
    value = section.get(key)
    if not isinstance(value, str) or not value:
        raise MediaProtocolError(f"{where}.{key} is missing or not a string")
    return value


def _int(section: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = section.get(key, default)
    try:
        return int(value)  # Twilio sends numbers as strings
    except (TypeError, ValueError):
        raise MediaProtocolError(f"{where}.{key} is not an integer: {value!r}") from None


def _payload(section: Mapping[str, Any], where: str) -> bytes:
    raw = _text(section, "payload", where)
    if len(raw) > MAX_MEDIA_PAYLOAD_BYTES * 4 // 3 + 4:
        raise MediaProtocolError(f"{where}.payload exceeds {MAX_MEDIA_PAYLOAD_BYTES} bytes")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise MediaProtocolError(f"{where}.payload is not valid base64") from None


def parse_inbound(text: str | bytes) -> InboundEvent:
    """Parse one frame Twilio sends to the service."""
    message = _load(text)
    event = message.get("event")
    stream_sid = message.get("streamSid")
    if event == "connected":
        return Connected(
            protocol=str(message.get("protocol", "")), version=str(message.get("version", ""))
        )
    if not isinstance(stream_sid, str) or not stream_sid:
        raise MediaProtocolError(f"{event!r} frame lacks streamSid")
    if event == "start":
        start = _section(message, "start")
        media_format = start.get("mediaFormat") or {}
        if not isinstance(media_format, dict):
            raise MediaProtocolError("start.mediaFormat is not an object")
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            raise MediaProtocolError("start.customParameters is not an object")
        tracks = start.get("tracks") or ["inbound"]
        return Start(
            stream_sid=stream_sid,
            call_sid=_text(start, "callSid", "start"),
            account_sid=str(start.get("accountSid", "")),
            encoding=str(media_format.get("encoding", "audio/x-mulaw")),
            sample_rate=_int(media_format, "sampleRate", "start.mediaFormat", 8000),
            channels=_int(media_format, "channels", "start.mediaFormat", 1),
            tracks=tuple(str(t) for t in tracks),
            custom_parameters={str(k): str(v) for k, v in params.items()},
        )
    if event == "media":
        media = _section(message, "media")
        return Media(
            stream_sid=stream_sid,
            payload=_payload(media, "media"),
            track=str(media.get("track", "inbound")),
            chunk=_int(media, "chunk", "media", 0),
            timestamp_ms=_int(media, "timestamp", "media", 0),
        )
    if event == "dtmf":
        digit = _text(_section(message, "dtmf"), "digit", "dtmf")
        if digit not in _DTMF_DIGITS:
            raise MediaProtocolError(f"dtmf.digit {digit!r} is not one of 0-9, * or #")
        return Dtmf(stream_sid=stream_sid, digit=digit)
    if event == "mark":
        return Mark(stream_sid=stream_sid, name=_text(_section(message, "mark"), "name", "mark"))
    if event == "stop":
        stop = message.get("stop") or {}
        call_sid = stop.get("callSid", "") if isinstance(stop, dict) else ""
        return Stop(stream_sid=stream_sid, call_sid=str(call_sid))
    raise MediaProtocolError(f"unknown event {event!r}")


def parse_outbound(text: str | bytes) -> OutboundEvent:
    """Parse one frame the service sends to Twilio (the simulated carrier's side)."""
    message = _load(text)
    event = message.get("event")
    stream_sid = message.get("streamSid")
    if not isinstance(stream_sid, str) or not stream_sid:
        raise MediaProtocolError(f"{event!r} frame lacks streamSid")
    if event == "media":
        return Media(
            stream_sid=stream_sid,
            payload=_payload(_section(message, "media"), "media"),
            track="outbound",
            chunk=0,
            timestamp_ms=0,
        )
    if event == "mark":
        return Mark(stream_sid=stream_sid, name=_text(_section(message, "mark"), "name", "mark"))
    if event == "clear":
        return Clear(stream_sid=stream_sid)
    raise MediaProtocolError(f"unknown outbound event {event!r}")


def _dump(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _b64(payload: bytes) -> str:
    return base64.b64encode(payload).decode("ascii")


# Service → Twilio


def media_message(stream_sid: str, payload: bytes) -> str:
    return _dump({"event": "media", "streamSid": stream_sid, "media": {"payload": _b64(payload)}})


def mark_message(stream_sid: str, name: str) -> str:
    return _dump({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return _dump({"event": "clear", "streamSid": stream_sid})


# Twilio → service (what the simulated carrier sends)


class InboundFrames:
    """Builds Twilio's inbound frames for one stream, numbering them as Twilio does."""

    def __init__(self, stream_sid: str, call_sid: str, account_sid: str) -> None:
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = account_sid
        self._sequence = 0
        self._chunk = 0
        self._timestamp_ms = 0

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    def connected(self) -> str:
        return _dump({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, custom_parameters: Mapping[str, str]) -> str:
        return _dump(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": dict(custom_parameters),
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    def media(self, payload: bytes) -> str:
        self._chunk += 1
        message = {
            "event": "media",
            "sequenceNumber": self._next(),
            "streamSid": self.stream_sid,
            "media": {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(self._timestamp_ms),
                "payload": _b64(payload),
            },
        }
        self._timestamp_ms += len(payload) // 8  # 8 μ-law bytes per millisecond at 8 kHz
        return _dump(message)

    def dtmf(self, digit: str) -> str:
        return _dump(
            {
                "event": "dtmf",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str) -> str:
        return _dump(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> str:
        return _dump(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )
