"""Speech layer figures on this machine: eSpeak NG render speed, Vosk (Korean) speed and accuracy.

    .venv/bin/python bench/speech_probe.py [--json]

Korean answers are synthesised by eSpeak NG in the simulated borrower's voice, carried as 8 kHz
μ-law (as a phone line would), decoded and recognised with per-state grammars (the answers of one
listening state plus the global intents), once at 8 kHz and once upsampled to 16 kHz. Free-form
recognition runs on a few longer lines. The last line printed is one JSON object:
``render_ms_per_audio_s`` (per language), ``mulaw_ms_per_audio_s``, ``model_load_s``,
``recognizer_create_ms``, ``rtf_grammar``, ``rtf_free_form``, ``accuracy_8k``, ``accuracy_16k``,
``utterances``, ``vocabulary`` (which answers the model knows as words, which it needs respelled).
Runs in about half a minute; it decodes one utterance at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import numpy as np

from voicebot.speech.audio import TELEPHONE_RATE, VOSK_RATE, Pcm16, mulaw_decode, resample
from voicebot.speech.borrower import borrower_voice
from voicebot.speech.recognition import Recognition, SpeechModels
from voicebot.speech.synthesis import Synthesizer, voice_for_language

GLOBAL = ["다음에 전화주세요", "전화하지 마세요", "불만이 있어요", "상담원 연결해 주세요"]
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
FREE_FORM = [
    "이번 주 토요일에 오십만 원 입금하겠습니다.",
    "요즘 회사를 그만둬서 돈이 없어요.",
    "다음 주에 다시 전화해 주세요.",
]
PROMPTS = {
    "zh-CN": ["您好，我是车贷回访助理，本次通话将被录音。", "请问您是张伟先生本人吗？"],
    "en-US": [
        "Hello, this is the car loan assistant. This call is recorded.",
        "Am I speaking with Mr Smith?",
    ],
    "ko-KR": [
        "안녕하세요, 자동차 대출 안내입니다. 이 통화는 녹음됩니다.",
        "김민준 고객님 본인이십니까?",
    ],
}
CHUNK_SECONDS = 0.1


async def recognise(
    models: SpeechModels, pcm: Pcm16, rate: int, grammar: list[str] | None
) -> Recognition:
    recognizer = await models.recognizer("ko-KR", grammar, sample_rate=rate)
    chunk = int(rate * CHUNK_SECONDS)
    texts: list[str] = []
    decode = audio = 0.0
    for start in range(0, len(pcm), chunk):
        result = await recognizer.accept(pcm[start : start + chunk])
        if isinstance(result, Recognition):
            texts.append(result.text)
            decode += result.decode_seconds
            audio += result.audio_seconds
    last = await recognizer.finish()
    texts.append(last.text)
    return Recognition(
        text=" ".join(t for t in texts if t),
        words=(),
        confidence=0.0,
        unknown=False,
        audio_seconds=audio + last.audio_seconds,
        decode_seconds=decode + last.decode_seconds,
    )


def telephone(mulaw: bytes) -> Pcm16:
    silence = np.zeros(int(TELEPHONE_RATE * 0.3), dtype=np.int16)
    return np.concatenate([silence, mulaw_decode(mulaw), silence, silence])


async def probe() -> dict[str, Any]:
    synthesizer = Synthesizer()
    render: dict[str, float] = {}
    mulaw_seconds = audio_seconds = 0.0
    for language, prompts in PROMPTS.items():
        voice = voice_for_language(language)
        total_render = total_audio = 0.0
        for text in prompts:
            speech = await synthesizer.render(text, voice)
            total_render += speech.render_seconds
            total_audio += speech.duration_seconds
            started = time.perf_counter()
            speech.to_mulaw_8k()
            mulaw_seconds += time.perf_counter() - started
        audio_seconds += total_audio
        render[language] = round(1000 * total_render / total_audio, 2)

    models = SpeechModels()
    model = await models.get("ko-KR")
    started = time.perf_counter()
    await models.recognizer("ko-KR", STATES["identity"] + GLOBAL)
    create_ms = 1000 * (time.perf_counter() - started)

    voice = borrower_voice("ko-KR")
    correct = {TELEPHONE_RATE: 0, VOSK_RATE: 0}
    grammar_decode = grammar_audio = 0.0
    utterances = 0
    misheard: list[dict[str, str]] = []
    for phrases in STATES.values():
        grammar = phrases + GLOBAL
        for phrase in grammar:
            pcm = telephone(await synthesizer.to_mulaw_8k(phrase, voice))
            utterances += 1
            for rate in correct:
                signal = pcm if rate == TELEPHONE_RATE else resample(pcm, TELEPHONE_RATE, rate)
                result = await recognise(models, signal, rate, grammar)
                if result.text.replace(" ", "") == phrase.replace(" ", ""):
                    correct[rate] += 1
                elif rate == TELEPHONE_RATE:
                    misheard.append({"said": phrase, "heard": result.text})
                if rate == TELEPHONE_RATE:
                    grammar_decode += result.decode_seconds
                    grammar_audio += result.audio_seconds

    free_decode = free_audio = 0.0
    free_form: list[dict[str, str]] = []
    for line in FREE_FORM:
        pcm = telephone(await synthesizer.to_mulaw_8k(line, voice))
        result = await recognise(models, pcm, TELEPHONE_RATE, None)
        free_decode += result.decode_seconds
        free_audio += result.audio_seconds
        free_form.append({"said": line, "heard": result.text})

    answers = sorted({p for phrases in STATES.values() for p in phrases + GLOBAL})
    vocabulary = model.vocabulary
    known = [p for p in answers if all(w in vocabulary for w in p.split())]
    respelled = {
        w: "+".join(pieces)
        for p in answers
        for w in p.split()
        if (pieces := vocabulary.respell(w)) is not None and len(pieces) > 1
    }
    models.close()
    return {
        "render_ms_per_audio_s": render,
        "mulaw_ms_per_audio_s": round(1000 * mulaw_seconds / audio_seconds, 2),
        "model_load_s": round(model.load_seconds, 2),
        "recognizer_create_ms": round(create_ms, 1),
        "rtf_grammar": round(grammar_decode / grammar_audio, 4),
        "rtf_free_form": round(free_decode / free_audio, 3),
        "accuracy_8k": round(correct[TELEPHONE_RATE] / utterances, 3),
        "accuracy_16k": round(correct[VOSK_RATE] / utterances, 3),
        "utterances": utterances,
        "misheard_8k": misheard,
        "free_form": free_form,
        "vocabulary": {
            "unknown_symbol": vocabulary.unknown_symbol,
            "answers_in_vocabulary": known,
            "respelled_words": respelled,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    result = asyncio.run(probe())
    if not args.json:
        for key in ("render_ms_per_audio_s", "rtf_grammar", "rtf_free_form", "accuracy_8k"):
            print(f"{key}: {result[key]}")
        print(f"accuracy_16k: {result['accuracy_16k']}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
