"""Real Vosk with the Korean model on Korean speech synthesised by eSpeak NG over a phone line.

eSpeak NG → μ-law 8 kHz 20 ms frames (as the simulated carrier sends them) → decode → Vosk.
The model loads once per session (a few seconds).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from voicebot.speech.audio import mulaw_decode
from voicebot.speech.borrower import BorrowerSpeaker, silence_frames
from voicebot.speech.recognition import (
    PartialRecognition,
    Recognition,
    Recognizer,
    SpeechModel,
    SpeechModels,
    build_grammar,
)

# Global intents, heard in every listening state.
GLOBAL = ["다음에 전화주세요", "전화하지 마세요", "불만이 있어요", "상담원 연결해 주세요"]
# Short everyday answers, grouped as a dialog's listening states would hear them.
STATES = {
    "identity": ["네", "예", "맞아요", "본인입니다", "아니요", "잘못 거셨어요", "누구세요"],
    "promise": [
        "삼십만 원",
        "오십만 원",
        "이십만 원",
        "백만 원",
        "다음 주 금요일",
        "이번 주 토요일",
        "내일",
        "모레",
        "월말",
        "십오일",
    ],
    "hardship": ["직장을 잃었어요", "차를 팔았어요", "수입이 줄었어요", "괜찮아요"],
}
# eSpeak NG's Korean is far from the speech this small model was trained on: exact-match accuracy
# of these utterances measures 0.27–0.36 (see the printed figures). This floor catches a broken
# audio path (a codec or resampler fault drives it to ~0), not the model's quality.
ACCURACY_FLOOR = 0.15


@pytest.fixture(scope="session")
def speech_models() -> Iterator[SpeechModels]:
    models = SpeechModels()
    models.load("ko-KR")
    yield models
    models.close()


@pytest.fixture(scope="session")
def korean(speech_models: SpeechModels) -> SpeechModel:
    return speech_models.load("ko-KR")


@pytest.fixture(scope="session")
def borrower() -> BorrowerSpeaker:
    return BorrowerSpeaker("ko-KR")


async def say(
    recognizer: Recognizer, speaker: BorrowerSpeaker, text: str, *, batch: int = 5
) -> tuple[Recognition, list[PartialRecognition]]:
    """Speak a line into the recogniser as 20 ms μ-law frames, ``batch`` frames at a time."""
    frames = await speaker.frames(text, lead_silence_ms=300, tail_silence_ms=400)
    partials: list[PartialRecognition] = []
    finals: list[Recognition] = []
    for i in range(0, len(frames), batch):
        result = await recognizer.accept_mulaw(b"".join(frames[i : i + batch]))
        if isinstance(result, PartialRecognition):
            partials.append(result)
        elif result.text:
            finals.append(result)
    last = await recognizer.finish()
    if last.text or not finals:
        finals.append(last)
    text = " ".join(r.text for r in finals if r.text)
    return (
        Recognition(
            text=text,
            words=tuple(w for r in finals for w in r.words),
            confidence=min(r.confidence for r in finals),
            unknown=any(r.unknown for r in finals),
            audio_seconds=sum(r.audio_seconds for r in finals),
            decode_seconds=sum(r.decode_seconds for r in finals),
        ),
        partials,
    )


def same(a: str, b: str) -> bool:
    return a.replace(" ", "") == b.replace(" ", "")


def test_vocabulary_of_the_korean_model(korean: SpeechModel) -> None:
    vocabulary = korean.vocabulary
    assert vocabulary.unknown_symbol == "<UNK>"  # this model has no "[unk]"
    for word in ["네", "아니요", "예", "다음", "주", "금요일", "원", "월말", "모레", "불만이"]:
        assert word in vocabulary, word
    for word in ["맞아요", "다음에", "전화주세요", "전화하지", "삼십만", "본인입니다"]:
        assert word not in vocabulary, word
    assert vocabulary.respell("맞아요") == ("맞아", "요")
    assert vocabulary.respell("삼십만") == ("삼십", "만")
    assert vocabulary.respell("전화주세요") == ("전화", "주세요")
    assert vocabulary.respell("qqqzzz") is None


def test_grammar_respells_drops_and_reports(
    korean: SpeechModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="voicebot.speech.recognition"):
        grammar = build_grammar(
            korean.vocabulary, ["네", "맞아요", "삼십만 원", "qqqzzz", "[unk]", "네 "]
        )
    assert grammar.phrases == ("네", "맞아 요", "삼십 만 원")
    assert grammar.dropped_words == ("qqqzzz",)
    assert "qqqzzz" in caplog.text and "맞아요=맞아+요" in caplog.text
    assert grammar.to_json() == '["네", "맞아 요", "삼십 만 원", "<UNK>"]'
    assert grammar.restore(["삼십", "만", "원", "맞아", "요"]) == ["삼십만", "원", "맞아요"]
    assert grammar.restore(["만", "원", "맞아"]) == ["만", "원", "맞아"]


async def test_everyday_answers_with_per_state_grammars(
    speech_models: SpeechModels, korean: SpeechModel, borrower: BorrowerSpeaker
) -> None:
    results = []
    for state, phrases in STATES.items():
        grammar = phrases + GLOBAL
        for phrase in grammar:
            recognizer = await speech_models.recognizer("ko-KR", grammar)
            recognition, _ = await say(recognizer, borrower, phrase)
            results.append((state, phrase, recognition))
    correct = [r for r in results if same(r[1], r[2].text)]
    accuracy = len(correct) / len(results)
    audio = sum(r[2].audio_seconds for r in results)
    decode = sum(r[2].decode_seconds for r in results)
    print(f"\nKorean grammar accuracy: {accuracy:.2f} over {len(results)} utterances")
    print(f"grammar real-time factor: {decode / audio:.3f} ({audio:.1f} s of audio)")
    for state, phrase, recognition in results:
        if not same(phrase, recognition.text):
            heard, confidence = recognition.text, recognition.confidence
            print(f"  {state}: {phrase!r} heard as {heard!r} ({confidence:.2f})")
    assert accuracy >= ACCURACY_FLOOR
    assert decode / audio < 0.5
    # Whatever it hears, a grammar recogniser only says the grammar's words (or their pieces).
    for state, _, recognition in results:
        built = korean.grammar(STATES[state] + GLOBAL)
        allowed = {w for p in built.source_phrases + built.phrases for w in p.split()}
        assert set(recognition.text.split()) <= allowed


async def test_free_form_recognition_runs_and_silence_is_empty(
    speech_models: SpeechModels, borrower: BorrowerSpeaker
) -> None:
    recognizer = await speech_models.recognizer("ko-KR")
    assert recognizer.grammar is None
    started = time.perf_counter()
    recognition, _ = await say(recognizer, borrower, "오십만 원 입금하겠습니다.")
    elapsed = time.perf_counter() - started
    print(
        f"\nfree-form: {recognition.text!r}, real-time factor "
        f"{recognition.decode_seconds / recognition.audio_seconds:.2f}"
    )
    assert len(recognition.words) >= 2
    assert 0.0 < recognition.confidence <= 1.0
    assert elapsed < 4 * recognition.audio_seconds + 2

    silent = await recognizer.accept_mulaw(b"".join(silence_frames(1000)))
    assert isinstance(silent, PartialRecognition) and silent.text == ""
    assert (await recognizer.finish()).text == ""


async def test_partials_timing_and_grammar_switch(
    speech_models: SpeechModels, borrower: BorrowerSpeaker
) -> None:
    recognizer = await speech_models.recognizer("ko-KR", ["네", "아니요", "다음 주 금요일"])
    first, partials = await say(recognizer, borrower, "다음 주 금요일")
    # Partial hypotheses arrive while the borrower is still talking (barge-in needs them).
    assert any(p.text for p in partials)
    assert first.words and all(w.start_seconds <= w.end_seconds for w in first.words)
    assert first.words[0].start_seconds >= 0.25  # after the 300 ms of leading silence
    assert first.words[-1].end_seconds <= first.audio_seconds + 0.1

    await recognizer.reset(["모레", "월말"])
    second, _ = await say(recognizer, borrower, "모레")
    assert set(second.text.split()) <= {"모레", "월말"}
    # Word times keep counting from the start of the call, across the grammar switch.
    assert second.words and second.words[0].start_seconds > first.audio_seconds


class _Exclusive:
    """Wraps a KaldiRecognizer and records whether two threads ever used it at once."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._active = 0
        self._lock = threading.Lock()
        self.max_active = 0
        self.threads: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)

        def call(*args: Any) -> Any:
            with self._lock:
                self._active += 1
                self.max_active = max(self.max_active, self._active)
                self.threads.add(threading.current_thread().name)
            try:
                time.sleep(0.002)  # widen the window a race would need
                return target(*args)
            finally:
                with self._lock:
                    self._active -= 1

        return call


async def test_one_recognizer_is_never_used_by_two_threads_and_keeps_order(
    speech_models: SpeechModels, borrower: BorrowerSpeaker
) -> None:
    frames = await borrower.frames("다음 주 금요일", lead_silence_ms=300, tail_silence_ms=400)
    chunks = [b"".join(frames[i : i + 2]) for i in range(0, len(frames), 2)]
    grammar = ["네", "아니요", "다음 주 금요일"]

    sequential = await speech_models.recognizer("ko-KR", grammar)
    for chunk in chunks:
        await sequential.accept(mulaw_decode(chunk))
    expected = await sequential.finish()

    concurrent = await speech_models.recognizer("ko-KR", grammar)
    spy = _Exclusive(concurrent._kaldi)
    concurrent._kaldi = spy
    loop_thread = threading.current_thread().name
    await asyncio.gather(*(concurrent.accept(mulaw_decode(c)) for c in chunks))
    got = await concurrent.finish()
    assert spy.max_active == 1
    assert loop_thread not in spy.threads
    assert got.text == expected.text
    assert [w.word for w in got.words] == [w.word for w in expected.words]
    assert np.isclose(got.audio_seconds, expected.audio_seconds)


async def test_pieces_fed_in_one_trip_decode_as_they_do_one_by_one(
    speech_models: SpeechModels, borrower: BorrowerSpeaker
) -> None:
    frames = await borrower.frames("모레", lead_silence_ms=300, tail_silence_ms=400)
    pieces = [b"".join(frames[i : i + 3]) for i in range(0, len(frames), 3)]
    grammar = ["네", "아니요", "모레", "다음 주 금요일"]

    one_by_one = await speech_models.recognizer("ko-KR", grammar)
    expected: list[Recognition | PartialRecognition] = [
        await one_by_one.accept_mulaw(piece) for piece in pieces
    ]
    expected.append(await one_by_one.finish())

    batched = await speech_models.recognizer("ko-KR", grammar)
    got = await batched.accept_mulaw_pieces(pieces, finish=True)
    assert len(got) == len(pieces) + 1
    assert [r.text for r in got] == [r.text for r in expected]
    last = got[-1]
    assert isinstance(last, Recognition) and isinstance(expected[-1], Recognition)
    assert [w.word for w in last.words] == [w.word for w in expected[-1].words]
    assert np.isclose(last.audio_seconds, expected[-1].audio_seconds)
    assert np.isclose(batched.audio_seconds_total, one_by_one.audio_seconds_total)
