"""Korean intent recognition through real speech, the way a call hears it.

    .venv/bin/python bench/intent_probe.py [--json] [--voices 160:35,140:50] [--held-out]
                                           [--dialog dialogs/car_loan_followup.ko-KR.yaml]

Every simulated borrower line (``voicebot.dialog.borrower_lines.SIMULATED_UTTERANCES_KO``) is
spoken by eSpeak NG in the simulated borrower's voice (``--voices`` RATE:PITCH pairs for others)
and carried as 20 ms frames of 8 kHz μ-law, with line silence around it, into what a call session
runs: the ``UtteranceListener`` with the session's endpointer settings, in front of one warm
``Recognizer`` holding the call-wide grammar (one recogniser per listening state's lines, as if
each state's lines were one call). The first utterance the endpointer closes is understood by the
dialog in that state, as the engine does it: an intent (the dialog's matchers), else a slot filled
(``fill``), else a no-match; a recognition below the script's ``min_confidence`` is a no-match.

It prints a line per utterance and, last, one JSON object: ``intent_accuracy`` (the same meaning
as the line's own text has in its state), ``slot_accuracy`` (over lines naming an amount or a
date: the same amount and date), ``utterances``, ``split`` (lines the endpointer cut in two),
``by_intent`` and the settings used. ``--held-out`` measures paraphrases instead: wordings never
used to design the dialog's phrases, to show how far the accuracy carries beyond the script.
Runs in about a minute per voice; it decodes one utterance at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from voicebot.calls.listener import HearingEvent, SpeechEnded, UtteranceListener
from voicebot.calls.services import call_grammar
from voicebot.config import Settings
from voicebot.dialog import Dialog, load_dialog
from voicebot.dialog.borrower_lines import SIMULATED_UTTERANCES_KO, SimulatedUtterance
from voicebot.dialog.understanding import best_intent, extract_slot
from voicebot.speech.audio import FRAME_MS, VadSettings
from voicebot.speech.borrower import (
    BORROWER_PITCH,
    BORROWER_RATE_WPM,
    BorrowerSpeaker,
    silence_frames,
)
from voicebot.speech.recognition import SpeechModels
from voicebot.speech.synthesis import Synthesizer, Voice

DIALOG = Path(__file__).resolve().parents[1] / "dialogs" / "car_loan_followup.ko-KR.yaml"
SEOUL = ZoneInfo("Asia/Seoul")
# Wednesday 11 December 2024, 10:00 in Seoul: relative dates are read against it.
NOW = datetime(2024, 12, 11, 10, 0, tzinfo=SEOUL)
LINE_SILENCE_MS = 1000
DITHER_SEED = 20_240_601  # Kaldi seeds its dither from rand(): the same audio, the same result

# Paraphrases of the scripted lines, never used to choose the dialog's phrases.
HELD_OUT_KO: tuple[SimulatedUtterance, ...] = tuple(
    SimulatedUtterance(state, text, intent)
    for state, intent, text in (
        ("opening", "yes", "네 그렇습니다"),
        ("opening", "yes", "예 맞습니다"),
        ("opening", "no", "아닙니다"),
        ("opening", "wrong_person", "번호 잘못 거셨어요"),
        ("opening", "who_is_this", "누구세요"),
        ("confirm_phone", "yes", "네 맞습니다"),
        ("confirm_phone", "no", "아니요 바뀌었어요"),
        ("ask_repayment", "yes", "네 그럴게요"),
        ("ask_repayment", "full", "전부 다 낼게요"),
        ("ask_repayment", "promise", "내일 낼게요"),
        ("ask_repayment", "promise", "이십만 원 낼게요"),
        ("ask_repayment", "no", "못 낼 것 같아요"),
        ("ask_repayment", "unsure", "잘 모르겠어요"),
        ("ask_repayment", "dispute", "벌써 냈어요"),
        ("ask_repayment", "hardship", "돈이 없어요"),
        ("ask_repayment", "job_loss", "회사에서 해고됐어요"),
        ("ask_repayment", "income_drop", "월급이 줄었어요"),
        ("ask_repayment", "vehicle_sold", "차를 처분했어요"),
        ("ask_repayment", "opt_out", "다시는 연락하지 마세요"),
        ("ask_repayment", "complaint", "불만이 있습니다"),
        ("ask_repayment", "call_later", "나중에 다시 전화 주세요"),
        ("ask_repayment", "human", "상담원 바꿔 주세요"),
        ("ask_promise_date", None, "다음 주 금요일"),
        ("ask_promise_amount", "promise", "삼십만 원 낼게요"),
        ("confirm_promise", "yes", "네"),
        ("callback", None, "내일 오후 두 시"),
    )
)


@dataclass(frozen=True, slots=True)
class Meaning:
    intent: str  # an intent's name, "fill", "no_match" or "no_input"
    amount: Decimal | None
    day: date | None


def meaning(dialog: Dialog, state: str, text: str, confidence: float = 1.0) -> Meaning:
    """What the engine makes of ``text`` in ``state`` (its ``heard`` step, without acting)."""
    language = dialog.language
    normalized = language.normalize(text)
    reading = language.read(text, NOW)
    if not normalized:
        return Meaning("no_input", None, None)
    if confidence < dialog.script.defaults.min_confidence:
        return Meaning("no_match", reading.amount, reading.day)
    candidates = dialog.candidates[state]
    winner = best_intent(language, normalized, [c.matcher for c in candidates], dialog.ignore)
    if winner is not None:
        return Meaning(winner.name, reading.amount, reading.day)
    fill = dialog.script.states[state].fill
    slots = fill.slots if fill is not None else []
    for slot in slots:
        spec = dialog.script.slots[slot]
        if extract_slot(spec, language, text, normalized, reading, NOW) is not None:
            return Meaning("fill", reading.amount, reading.day)
    return Meaning("no_match", reading.amount, reading.day)


def expected(dialog: Dialog, line: SimulatedUtterance) -> Meaning:
    """The line's own intent label ("fill" for none) with the amount and date its text names."""
    said = meaning(dialog, line.state, line.text)
    return Meaning(line.intent or "fill", said.amount, said.day)


@dataclass(frozen=True, slots=True)
class Heard:
    line: SimulatedUtterance
    voice: Voice
    text: str  # the first utterance the endpointer closed
    confidence: float
    segments: int
    expected: Meaning
    got: Meaning

    @property
    def intent_ok(self) -> bool:
        return self.got.intent == self.expected.intent

    @property
    def has_slot(self) -> bool:
        return self.expected.amount is not None or self.expected.day is not None

    @property
    def slot_ok(self) -> bool:
        return (self.got.amount, self.got.day) == (self.expected.amount, self.expected.day)


def _seed_dither(seed: int) -> None:
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).srand(ctypes.c_uint(seed))
    except (OSError, AttributeError):
        return


async def _drain(listener: UtteranceListener) -> None:
    """Wait until the listener has taken every frame pushed (it has no hook for that). The line
    ends in a second of silence, so by then its utterance has ended; the frame still in hand is
    silence."""
    while listener.backlog_frames:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)


async def hear_state(
    dialog: Dialog,
    models: SpeechModels,
    speaker: BorrowerSpeaker,
    lines: Sequence[SimulatedUtterance],
    settings: Settings,
    seed: int = DITHER_SEED,
) -> list[Heard]:
    """One call's worth of lines, in order, through one listener and one recogniser."""
    _seed_dither(seed)
    recognizer = await models.recognizer(dialog.script.language, call_grammar(dialog))
    events: list[HearingEvent] = []
    listener = UtteranceListener(
        recognizer,
        events.append,
        vad=VadSettings(hangover_ms=settings.media_end_of_speech_ms),
        preroll_ms=settings.media_preroll_ms,
    )
    listener.start()
    clock = datetime(2024, 12, 11, 1, 0, tzinfo=UTC)
    heard: list[Heard] = []
    try:
        for line in lines:
            frames = [
                *silence_frames(LINE_SILENCE_MS),
                *await speaker.frames(line.text),
                *silence_frames(LINE_SILENCE_MS),
            ]
            first_event = len(events)
            for frame in frames:
                listener.push(frame, clock)
                clock += timedelta(milliseconds=FRAME_MS)
            await _drain(listener)
            ended = [e for e in events[first_event:] if isinstance(e, SpeechEnded) and e.text]
            text = ended[0].text if ended else ""
            confidence = ended[0].confidence if ended else 0.0
            assert speaker.voice is not None
            heard.append(
                Heard(
                    line=line,
                    voice=speaker.voice,
                    text=text,
                    confidence=confidence,
                    segments=len(ended),
                    expected=expected(dialog, line),
                    got=meaning(dialog, line.state, text, confidence),
                )
            )
    finally:
        await listener.aclose()
    return heard


async def probe(
    dialog: Dialog,
    lines: Sequence[SimulatedUtterance],
    voices: Sequence[Voice],
    *,
    quiet: bool,
    fresh: bool,
    seeds: int = 1,
) -> dict[str, Any]:
    settings = Settings()
    models = SpeechModels()
    synthesizer = Synthesizer()
    started = time.perf_counter()
    model = await models.get(dialog.script.language)
    results: list[Heard] = []
    try:
        for voice in voices:
            speaker = BorrowerSpeaker(dialog.script.language, synthesizer, voice)
            states = list(dict.fromkeys(line.state for line in lines))
            groups = [[line for line in lines if line.state == state] for state in states]
            if fresh:
                groups = [[line] for group in groups for line in group]
            for seed in range(DITHER_SEED, DITHER_SEED + seeds):
                for group in groups:
                    for item in await hear_state(dialog, models, speaker, group, settings, seed):
                        results.append(item)
                        if not quiet:
                            _print(item)
    finally:
        await asyncio.to_thread(models.close)
    with_slots = [r for r in results if r.has_slot]
    by_intent: dict[str, list[int]] = {}
    for r in results:
        tally = by_intent.setdefault(r.expected.intent, [0, 0])
        tally[0] += r.intent_ok
        tally[1] += 1
    misheard = Counter(
        (r.line.state, r.line.text, r.text, r.got.intent) for r in results if not r.intent_ok
    )
    return {
        "intent_accuracy": round(sum(r.intent_ok for r in results) / len(results), 3),
        "slot_accuracy": (
            round(sum(r.slot_ok for r in with_slots) / len(with_slots), 3) if with_slots else None
        ),
        "utterances": len(results),
        "split": sum(r.segments > 1 for r in results),
        "wrong_intent": sum(
            not r.intent_ok and r.got.intent not in ("fill", "no_match", "no_input")
            for r in results
        ),
        "by_intent": {k: round(ok / n, 3) for k, (ok, n) in sorted(by_intent.items())},
        "voices": [f"{v.rate}:{v.pitch}" for v in voices],
        "recognizer": "new per line" if fresh else "one per state",
        "dither_seeds": seeds,
        "tuning": {
            "acoustic_scale": model.tuning.acoustic_scale,
            "backoff_mass": model.tuning.backoff_mass,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "misheard": [
            {"state": s, "said": said, "heard": text, "understood": got, "times": n}
            for (s, said, text, got), n in misheard.most_common(15)
        ],
    }


def _print(item: Heard) -> None:
    mark = "ok " if item.intent_ok else "XX "
    slot = "" if not item.has_slot else (" slot ok" if item.slot_ok else " slot XX")
    split = f" ({item.segments} parts)" if item.segments > 1 else ""
    print(
        f"{mark}{item.voice.rate}:{item.voice.pitch} {item.line.state:18} "
        f"{item.expected.intent:12} {item.line.text} → {item.text or '∅'} "
        f"[{item.got.intent} {item.confidence:.2f}]{slot}{split}",
        flush=True,
    )


def _voices(spec: str) -> list[Voice]:
    voices = []
    for pair in spec.split(","):
        rate, pitch = pair.split(":")
        voices.append(Voice("ko", int(rate), int(pitch)))
    return voices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--dialog", type=Path, default=DIALOG)
    parser.add_argument(
        "--voices",
        default=f"{BORROWER_RATE_WPM}:{BORROWER_PITCH}",
        help="eSpeak NG RATE:PITCH pairs, comma-separated (default: the simulated borrower)",
    )
    parser.add_argument("--held-out", action="store_true", help="paraphrases, not the script")
    parser.add_argument(
        "--fresh", action="store_true", help="a new recogniser for every line, not per state"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="repeat with this many dither seeds (Kaldi dithers the audio with seeded noise)",
    )
    args = parser.parse_args()
    dialog = load_dialog(args.dialog)
    lines = HELD_OUT_KO if args.held_out else SIMULATED_UTTERANCES_KO
    voices = _voices(args.voices)
    result = asyncio.run(
        probe(dialog, lines, voices, quiet=args.json, fresh=args.fresh, seeds=args.seeds)
    )
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
