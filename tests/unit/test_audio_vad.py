"""The energy endpointer on synthetic signals: speech-like bursts, silence, steady noise."""

from __future__ import annotations

import numpy as np
import pytest

from voicebot.speech.audio import (
    FRAME_MS,
    Pcm16,
    VadEvent,
    VadSettings,
    VoiceActivityDetector,
    frame_dbfs,
    pcm16_from_float,
)

RATE = 8_000
FRAME = RATE * FRAME_MS // 1000


def frames_of(signal: Pcm16) -> list[Pcm16]:
    return [signal[i : i + FRAME] for i in range(0, len(signal) - FRAME + 1, FRAME)]


def burst(seconds: float, level: float = 0.3, seed: int = 0) -> Pcm16:
    """A syllabic-rate modulated tone mix: loud like speech, not steady like hum."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    carrier = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t)
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return pcm16_from_float(level * carrier * envelope + 0.001 * rng.standard_normal(t.size))


def noise(seconds: float, level: float, seed: int = 1) -> Pcm16:
    rng = np.random.default_rng(seed)
    return pcm16_from_float(level * rng.standard_normal(int(RATE * seconds)))


def run(vad: VoiceActivityDetector, signal: Pcm16) -> list[tuple[int, VadEvent]]:
    events = []
    for index, frame in enumerate(frames_of(signal)):
        event = vad.process(frame)
        if event is not None:
            events.append((index * FRAME_MS, event))
    return events


def test_levels() -> None:
    assert frame_dbfs(np.zeros(FRAME, dtype=np.int16)) == -120.0
    full = pcm16_from_float(np.sin(2 * np.pi * 1000 * np.arange(FRAME) / RATE))
    assert frame_dbfs(full) == pytest.approx(-3.0, abs=0.1)


def test_silence_never_triggers() -> None:
    assert run(VoiceActivityDetector(), np.zeros(RATE * 3, dtype=np.int16)) == []


def test_speech_starts_quickly_and_ends_after_the_hangover() -> None:
    settings = VadSettings(hangover_ms=400)
    signal = np.concatenate(
        [np.zeros(RATE // 2, dtype=np.int16), burst(1.0), np.zeros(RATE, dtype=np.int16)]
    )
    events = run(VoiceActivityDetector(settings), signal)
    assert [e for _, e in events] == [VadEvent.SPEECH_START, VadEvent.SPEECH_END]
    start_ms, end_ms = events[0][0], events[1][0]
    # Speech begins at 500 ms: barge-in must fire within ~100 ms of it.
    assert 500 <= start_ms <= 500 + 100
    # It ends at 1500 ms: end of utterance after the 400 ms hangover, give or take a frame.
    assert 1500 + 400 - FRAME_MS <= end_ms <= 1500 + 400 + FRAME_MS


def test_short_pauses_inside_an_utterance_do_not_end_it() -> None:
    signal = np.concatenate(
        [burst(0.5), np.zeros(RATE * 3 // 10, dtype=np.int16), burst(0.5, seed=2)]
    )
    events = run(VoiceActivityDetector(VadSettings(hangover_ms=600)), signal)
    assert [e for _, e in events] == [VadEvent.SPEECH_START]


def test_a_click_is_not_speech() -> None:
    signal = np.concatenate(
        [np.zeros(RATE // 2, dtype=np.int16), burst(0.02), np.zeros(RATE // 2, dtype=np.int16)]
    )
    assert run(VoiceActivityDetector(), signal) == []


def test_steady_line_noise_is_learned_and_speech_still_detected() -> None:
    hiss = noise(2.0, 0.02)  # about -34 dBFS, above the absolute speech floor
    events = run(VoiceActivityDetector(), np.concatenate([hiss, hiss + burst(2.0)]))
    # The noise alone may not count as speech for more than its first moments…
    assert all(ms >= 2000 for ms, e in events if e is VadEvent.SPEECH_START)
    # …and speech over it is still found.
    assert VadEvent.SPEECH_START in [e for _, e in events]


def test_max_utterance_closes_endless_speech() -> None:
    vad = VoiceActivityDetector(VadSettings(max_utterance_ms=1000))
    events = run(vad, burst(2.5))
    assert [e for _, e in events][:2] == [VadEvent.SPEECH_START, VadEvent.SPEECH_END]
    assert events[1][0] <= 1100


def test_reset_forgets_the_utterance() -> None:
    vad = VoiceActivityDetector()
    run(vad, burst(0.3))
    assert vad.in_speech
    vad.reset()
    assert not vad.in_speech


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        VadSettings(hangover_ms=0)
    with pytest.raises(ValueError):
        VadSettings(start_ms=100, start_window_ms=60)
    with pytest.raises(ValueError):
        VadSettings(noise_fall=0)
