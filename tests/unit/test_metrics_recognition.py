"""The listener records each utterance's recognition real-time factor in /metrics."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.unit.test_calls_listener import SILENCE, RecordingRecognizer, _listen, tone
from voicebot.speech.recognition import Recognition


class TimedRecognizer(RecordingRecognizer):
    """Two seconds of audio decoded in half a second: a real-time factor of 0.25."""

    def _finish(self) -> Recognition:
        done = super()._finish()
        return Recognition(
            text=done.text,
            words=(),
            confidence=0.9,
            unknown=False,
            audio_seconds=2.0,
            decode_seconds=0.5,
        )


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_each_recognition_is_observed_with_its_real_time_factor() -> None:
    count = _sample("voicebot_recognition_real_time_factor_count")
    total = _sample("voicebot_recognition_real_time_factor_sum")
    recognizer = TimedRecognizer()
    await _listen([SILENCE] * 25 + tone(600) + [SILENCE] * 25, recognizer)
    observed = _sample("voicebot_recognition_real_time_factor_count") - count
    # One utterance (the listener's priming also closes one, which is not the caller's).
    assert observed == 1 and recognizer.finishes == 2
    # The sum is process-wide (earlier tests add to it): compare as floats, not exactly.
    added = _sample("voicebot_recognition_real_time_factor_sum") - total
    assert added == pytest.approx(0.25 * observed)
