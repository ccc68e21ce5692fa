"""Real eSpeak NG through pyttsx3: the three dialog voices, the one-thread rule, the cache."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import espeakng_loader
import numpy as np
import pytest

from voicebot.speech import synthesis
from voicebot.speech.audio import (
    ESPEAK_RATE,
    FRAME_MS,
    MULAW_FRAME_BYTES,
    VadEvent,
    VoiceActivityDetector,
    frame_dbfs,
    mulaw_decode,
)
from voicebot.speech.borrower import BorrowerSpeaker, borrower_voice, silence_frames
from voicebot.speech.synthesis import (
    SynthesisError,
    Synthesizer,
    Voice,
    voice_for_language,
)

LINES = {
    "zh-CN": "您好，我是车贷回访助理，本次通话将被录音。",
    "en-US": "Hello, this is the car loan assistant. This call is recorded.",
    "ko-KR": "안녕하세요, 자동차 대출 안내입니다. 이 통화는 녹음됩니다.",
}


@pytest.mark.parametrize("language", sorted(LINES))
async def test_each_dialog_voice_renders_plausible_speech(language: str) -> None:
    synthesizer = Synthesizer()
    speech = await synthesizer.render(LINES[language], voice_for_language(language))
    assert speech.sample_rate == ESPEAK_RATE
    assert speech.pcm.dtype == np.int16
    # A sentence of 8–20 syllables at a normal pace: roughly 1.5–8 seconds.
    assert 1.5 < speech.duration_seconds < 8.0
    assert frame_dbfs(speech.pcm) > -30  # not silence
    assert np.abs(speech.pcm).max() < 32767  # not clipped flat
    print(
        f"{language}: {speech.duration_seconds:.2f} s of audio in "
        f"{speech.render_seconds * 1000:.1f} ms "
        f"({speech.render_seconds * 1000 / speech.duration_seconds:.1f} ms per second)"
    )


def test_espeak_comes_from_the_wheel_not_the_system() -> None:
    espeak = synthesis._espeak_thread()
    espeak.executor.submit(espeak.voice_ids).result()
    loader_dir = Path(espeakng_loader.get_library_path()).parent.resolve()
    mapped = {
        Path(line.split()[-1]).resolve()
        for line in Path("/proc/self/maps").read_text().splitlines()
        if "libespeak" in line
    }
    assert mapped, "eSpeak NG is not loaded"
    assert all(path.parent == loader_dir for path in mapped), mapped
    assert os.environ["ESPEAK_DATA_PATH"] == espeakng_loader.get_data_path()


async def test_voices_offered_include_the_dialog_voices() -> None:
    ids = await Synthesizer().voice_ids()
    assert {"sit/cmn", "gmw/en-us", "ko"} <= ids


async def test_renders_run_on_one_thread_and_never_block_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: set[str] = set()
    original = synthesis._EspeakThread.render

    def spy(self: synthesis._EspeakThread, text: str, voice: Voice) -> synthesis.SynthesizedSpeech:
        seen.add(threading.current_thread().name)
        return original(self, text, voice)

    monkeypatch.setattr(synthesis._EspeakThread, "render", spy)
    synthesizer = Synthesizer()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    texts = [f"Your instalment number {n} is due on the fifteenth." for n in range(12)]
    voice = voice_for_language("en-US")
    results = await asyncio.gather(*(synthesizer.render(t, voice) for t in texts))
    task.cancel()
    assert all(r.duration_seconds > 1 for r in results)
    assert len(seen) == 1 and next(iter(seen)).startswith("espeak")
    assert ticks > 0  # the loop kept running while eSpeak worked


async def test_cache_is_keyed_by_text_and_voice_and_bounded() -> None:
    synthesizer = Synthesizer(cache_size=2)
    voice = voice_for_language("en-US")
    first = await synthesizer.render("Good morning.", voice)
    again = await synthesizer.render("Good morning.", voice)
    assert again is first
    faster = await synthesizer.render("Good morning.", Voice("gmw/en-us", rate=260))
    assert faster is not first and faster.duration_seconds < first.duration_seconds
    await synthesizer.render("Good evening.", voice)
    assert not synthesizer.cached("Good morning.", voice)  # evicted, least recently used
    assert synthesizer.stats.cache_hits == 1 and synthesizer.stats.renders == 3


async def test_prerender_fills_the_cache_with_phone_audio() -> None:
    synthesizer = Synthesizer()
    voice = voice_for_language("ko-KR")
    prompts = ["네, 알겠습니다.", "다시 말씀해 주시겠어요?", "네, 알겠습니다."]
    await synthesizer.prerender(prompts, voice)
    assert synthesizer.stats.renders == 2
    started = time.perf_counter()
    mulaw = await synthesizer.to_mulaw_8k("다시 말씀해 주시겠어요?", voice)
    assert time.perf_counter() - started < 0.01  # served from the cache
    speech = await synthesizer.render("다시 말씀해 주시겠어요?", voice)
    assert len(mulaw) == pytest.approx(speech.duration_seconds * 8000, abs=2)


async def test_empty_text_is_silence_and_unknown_voice_is_refused() -> None:
    synthesizer = Synthesizer()
    empty = await synthesizer.render("   ", voice_for_language("en-US"))
    assert empty.pcm.size == 0
    with pytest.raises(SynthesisError, match="no voice"):
        await synthesizer.render("hello", Voice("xx/none"))
    with pytest.raises(ValueError, match="no synthesis voice"):
        voice_for_language("fr-FR")
    with pytest.raises(ValueError):
        Voice("ko", rate=10)


async def test_rendered_audio_is_read_only() -> None:
    speech = await Synthesizer().render("Read only.", voice_for_language("en-US"))
    with pytest.raises(ValueError):
        speech.pcm[0] = 1


def vad_events(signal: np.ndarray) -> list[tuple[float, VadEvent]]:
    frame = 8000 * FRAME_MS // 1000
    vad = VoiceActivityDetector()
    events = []
    for i in range(0, len(signal) - frame + 1, frame):
        event = vad.process(signal[i : i + frame])
        if event is not None:
            events.append((i / 8000, event))
    return events


@pytest.mark.parametrize("line_noise", [False, True])
async def test_vad_hears_synthesised_speech_but_not_silence_or_noise(line_noise: bool) -> None:
    speech = await Synthesizer().render(LINES["ko-KR"], voice_for_language("ko-KR"))
    telephone = mulaw_decode(speech.to_mulaw_8k()).astype(np.int32)
    rng = np.random.default_rng(7)
    lead, tail = 4 * 8000, 2 * 8000
    total = lead + telephone.size + tail
    # Line noise, when present, is there from the start (about -40 dBFS), as on a real line.
    background = 0.01 * 32767 * rng.standard_normal(total) if line_noise else np.zeros(total)
    signal = background
    signal[lead : lead + telephone.size] += telephone
    events = vad_events(np.clip(signal, -32768, 32767).astype(np.int16))
    starts = [t for t, e in events if e is VadEvent.SPEECH_START]
    ends = [t for t, e in events if e is VadEvent.SPEECH_END]
    assert starts and all(t >= 4.0 for t in starts)
    assert starts[0] < 4.0 + 0.2
    assert ends and ends[-1] < 4.0 + speech.duration_seconds + 1.0
    assert not any(t > 4.0 + speech.duration_seconds + 0.1 for t in starts)


async def test_borrower_speaks_in_20ms_mulaw_frames() -> None:
    speaker = BorrowerSpeaker("ko-KR")
    assert speaker.voice == borrower_voice("ko-KR")
    assert speaker.voice != voice_for_language("ko-KR")
    frames = await speaker.frames("네, 맞아요.", lead_silence_ms=100, tail_silence_ms=50)
    assert all(len(f) == MULAW_FRAME_BYTES for f in frames)
    assert frames[:5] == silence_frames(100) and frames[-3:] == silence_frames(50)
    speech = await speaker.synthesizer.render("네, 맞아요.", borrower_voice("ko-KR"))
    assert len(frames) == 5 + 3 + -(-round(speech.duration_seconds * 8000) // 160)


async def test_back_to_back_renders_each_speak_at_their_own_rate() -> None:
    # pyttsx3's queued settings were cancelled by its next run: a third of renders came out at
    # the previous render's rate.
    synthesizer = Synthesizer(cache_size=0)
    slow, fast = voice_for_language("en-US"), Voice("gmw/en-us", rate=300)
    for n in range(8):
        text = f"Instalment {n} is due on Friday."
        at_slow = await synthesizer.render(text, slow)
        at_fast = await synthesizer.render(text, fast)
        assert at_fast.duration_seconds < 0.85 * at_slow.duration_seconds, n
