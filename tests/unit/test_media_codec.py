"""The media-stream codec against Twilio's documented frames, and its refusals."""

from __future__ import annotations

import base64
import json

import pytest

from voicebot.telephony.media import (
    MAX_MEDIA_PAYLOAD_BYTES,
    Clear,
    Connected,
    Dtmf,
    InboundFrames,
    Mark,
    Media,
    MediaProtocolError,
    Start,
    Stop,
    clear_message,
    mark_message,
    media_message,
    parse_inbound,
    parse_outbound,
)

# Frames as Twilio's media-stream documentation shows them.
TWILIO_START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "AC00000000000000000000000000000000",
        "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
        "callSid": "CA00000000000000000000000000000000",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"call_id": "42", "token": "abc"},
    },
    "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
}


def test_parses_twilio_start_frame() -> None:
    event = parse_inbound(json.dumps(TWILIO_START))
    assert event == Start(
        stream_sid="MZ18ad3ab5a668481ce02b83e7395059f0",
        call_sid="CA00000000000000000000000000000000",
        account_sid="AC00000000000000000000000000000000",
        encoding="audio/x-mulaw",
        sample_rate=8000,
        channels=1,
        tracks=("inbound",),
        custom_parameters={"call_id": "42", "token": "abc"},
    )


def test_parses_media_with_string_numbers() -> None:
    frame = {
        "event": "media",
        "sequenceNumber": "3",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "/////w=="},
        "streamSid": "MZ1",
    }
    event = parse_inbound(json.dumps(frame))
    assert event == Media("MZ1", b"\xff\xff\xff\xff", "inbound", 1, 5)


def test_round_trip_through_the_simulated_side() -> None:
    frames = InboundFrames("MZ1", "CA1", "AC1")
    assert parse_inbound(frames.connected()) == Connected("Call", "1.0.0")
    start = parse_inbound(frames.start({"call_id": "7"}))
    assert isinstance(start, Start) and start.custom_parameters == {"call_id": "7"}
    first = parse_inbound(frames.media(b"\x7f" * 160))
    second = parse_inbound(frames.media(b"\x7f" * 160))
    assert isinstance(first, Media) and isinstance(second, Media)
    assert (first.chunk, first.timestamp_ms) == (1, 0)
    assert (second.chunk, second.timestamp_ms) == (2, 20)
    assert parse_inbound(frames.dtmf("#")) == Dtmf("MZ1", "#")
    assert parse_inbound(frames.mark("prompt-3")) == Mark("MZ1", "prompt-3")
    assert parse_inbound(frames.stop()) == Stop("MZ1", "CA1")


def test_outbound_messages_parse_back() -> None:
    expected = Media("MZ1", b"\x00\x01", "outbound", 0, 0)
    assert parse_outbound(media_message("MZ1", b"\x00\x01")) == expected
    assert parse_outbound(mark_message("MZ1", "p1")) == Mark("MZ1", "p1")
    assert parse_outbound(clear_message("MZ1")) == Clear("MZ1")
    assert json.loads(clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}


@pytest.mark.parametrize(
    ("frame", "complaint"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"event": "media", "streamSid": "MZ1", "media": {"payload": "%%%"}}', "not valid base64"),
        ('{"event": "media", "streamSid": "MZ1"}', "lacks the 'media' object"),
        ('{"event": "media", "media": {"payload": "AA=="}}', "lacks streamSid"),
        ('{"event": "dance", "streamSid": "MZ1"}', "unknown event 'dance'"),
        ('{"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": "x"}}', "not one of 0-9"),
        ('{"event": "start", "streamSid": "MZ1", "start": {}}', "start.callSid"),
    ],
)
def test_refuses_bad_frames_naming_the_problem(frame: str, complaint: str) -> None:
    with pytest.raises(MediaProtocolError, match=complaint):
        parse_inbound(frame)


def test_refuses_oversized_payload() -> None:
    payload = base64.b64encode(b"\x00" * (MAX_MEDIA_PAYLOAD_BYTES + 1000)).decode()
    frame = json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": payload}})
    with pytest.raises(MediaProtocolError, match="exceeds"):
        parse_inbound(frame)
