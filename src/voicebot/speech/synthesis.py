"""Text to speech with pyttsx3 on eSpeak NG, confined to one thread per process.

eSpeak NG comes from the ``espeakng-loader`` wheel: its shared library is loaded before pyttsx3
looks for ``libespeak-ng.so.1`` (the dynamic loader then resolves that name to the library
already in the process) and ``ESPEAK_DATA_PATH`` points at its data, so no system package is
used. eSpeak keeps global state and pyttsx3 is not thread-safe, so every engine call in the
process runs on one dedicated thread; renders never block the event loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import tempfile
import threading
import time
import wave
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from voicebot.speech.audio import ESPEAK_RATE, Pcm16, mulaw_frames, pcm_to_mulaw_8k

log = logging.getLogger(__name__)

DEFAULT_RATE_WPM: Final = 175
DEFAULT_PITCH: Final = 50

# pyttsx3 voice ids (eSpeak NG voice identifiers) for the dialog languages.
VOICE_IDS_BY_LANGUAGE: Final[dict[str, str]] = {
    "zh-CN": "sit/cmn",
    "en-US": "gmw/en-us",
    "ko-KR": "ko",
}


class SynthesisError(RuntimeError):
    """eSpeak NG could not be loaded or failed to render."""


@dataclass(frozen=True, slots=True)
class Voice:
    """An eSpeak NG voice with its speaking rate (words per minute) and pitch (0–100)."""

    id: str
    rate: int = DEFAULT_RATE_WPM
    pitch: int = DEFAULT_PITCH

    def __post_init__(self) -> None:
        if not 80 <= self.rate <= 450:
            raise ValueError(f"speaking rate must be 80–450 words per minute, got {self.rate}")
        if not 0 <= self.pitch <= 100:
            raise ValueError(f"pitch must be 0–100, got {self.pitch}")


def voice_for_language(
    language: str, *, rate: int = DEFAULT_RATE_WPM, pitch: int = DEFAULT_PITCH
) -> Voice:
    """The voice for a BCP 47 language tag of a dialog (``zh-CN``, ``en-US``, ``ko-KR``)."""
    try:
        voice_id = VOICE_IDS_BY_LANGUAGE[language]
    except KeyError:
        known = ", ".join(sorted(VOICE_IDS_BY_LANGUAGE))
        raise ValueError(f"no synthesis voice for language {language!r} (known: {known})") from None
    return Voice(voice_id, rate=rate, pitch=pitch)


@dataclass(frozen=True, slots=True)
class SynthesizedSpeech:
    """Rendered speech: read-only PCM16 mono samples at ``sample_rate``."""

    pcm: Pcm16
    sample_rate: int
    render_seconds: float

    @property
    def duration_seconds(self) -> float:
        return self.pcm.size / self.sample_rate

    def to_mulaw_8k(self) -> bytes:
        """The speech as an 8 kHz μ-law byte string, as a phone line carries it."""
        return pcm_to_mulaw_8k(self.pcm, self.sample_rate)

    def mulaw_frames(self) -> list[bytes]:
        """The speech as 20 ms μ-law frames (the last padded with silence)."""
        return mulaw_frames(self.to_mulaw_8k())


class _EspeakThread:
    """The one thread that owns pyttsx3 and eSpeak NG in this process."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._engine: Any = None
        self._voice_ids: frozenset[str] = frozenset()
        self._errors: list[BaseException] = []
        # eSpeak's retrieval mode synthesises on a thread of its own and pyttsx3's runAndWait can
        # return before it is done; the driver announces the end only after the WAV is closed.
        self._finished = threading.Event()

    def _start(self) -> Any:
        if self._engine is not None:
            return self._engine
        try:
            import espeakng_loader

            os.environ["ESPEAK_DATA_PATH"] = espeakng_loader.get_data_path()
            ctypes.CDLL(espeakng_loader.get_library_path(), mode=ctypes.RTLD_GLOBAL)
            import pyttsx3
            import pyttsx3.drivers.espeak as espeak_driver
        except (ImportError, OSError, RuntimeError) as exc:
            raise SynthesisError(
                f"eSpeak NG is unavailable ({exc}); install the speech extra: "
                "pip install 'voicebot[speech]'"
            ) from exc
        # The driver prints "Audio saved to …" on stdout after every file; route it to the log.
        espeak_driver.print = _driver_print
        engine = pyttsx3.init("espeak")
        # A new pyttsx3 proxy starts "busy": the first runAndWait would then run its own end-of-loop
        # command before the synthesis and return while eSpeak (which calls back from a thread of
        # its own) is still writing the file. An empty run clears that state.
        engine.runAndWait()
        engine.connect("error", self._on_error)
        engine.connect("finished-utterance", self._on_finished)
        self._voice_ids = frozenset(v.id for v in engine.getProperty("voices"))
        self._engine = engine
        log.info("eSpeak NG loaded from %s", espeakng_loader.get_library_path())
        return engine

    def _on_error(self, name: str | None = None, exception: BaseException | None = None) -> None:
        self._errors.append(exception or SynthesisError("pyttsx3 reported an error"))

    def _on_finished(self, name: str | None = None, completed: bool = True) -> None:
        # A cancelled run (completed=False) leaves no audio; only a completed one counts.
        if completed:
            self._finished.set()

    def voice_ids(self) -> frozenset[str]:
        self._start()
        return self._voice_ids

    def render(self, text: str, voice: Voice) -> SynthesizedSpeech:
        engine = self._start()
        if voice.id not in self._voice_ids:
            raise SynthesisError(f"eSpeak NG has no voice {voice.id!r}")
        started = time.perf_counter()
        # pyttsx3 sometimes cancels a synthesis it has just started (its end-of-loop command
        # stops a "playing" engine); such a run reports completed=False or leaves no audio.
        for _ in range(_RENDER_ATTEMPTS):
            pcm = self._render_once(engine, text, voice)
            if pcm is not None:
                pcm.flags.writeable = False
                return SynthesizedSpeech(pcm, ESPEAK_RATE, time.perf_counter() - started)
        raise SynthesisError(f"eSpeak NG produced no audio in {_RENDER_ATTEMPTS} attempts")

    def _render_once(self, engine: Any, text: str, voice: Voice) -> Pcm16 | None:
        self._errors.clear()
        with tempfile.TemporaryDirectory(prefix="voicebot-tts-") as tmp:
            path = Path(tmp) / "speech.wav"
            _use_voice(voice)
            self._finished.clear()
            engine.save_to_file(text, str(path))
            engine.runAndWait()
            if not self._finished.wait(timeout=_RENDER_TIMEOUT_SECONDS):
                return None
            if self._errors:
                raise SynthesisError(f"eSpeak NG failed to render: {self._errors[0]}")
            if not path.exists():
                return None
            pcm = _read_wav(path)
        return pcm if pcm.size else None


def _use_voice(voice: Voice) -> None:
    """Set eSpeak's voice, rate and pitch now, and wait until eSpeak has taken them.

    Not through pyttsx3's engine: it queues them until its next run, which starts by cancelling
    whatever eSpeak has not yet done, so the rate and pitch (eSpeak queues those itself) were
    lost, and the render spoke at the previous one's rate, about one time in three."""
    from pyttsx3.drivers import _espeak
    from pyttsx3.drivers.espeak import EspeakDriver

    EspeakDriver.setProperty("voice", voice.id)
    EspeakDriver.setProperty("rate", voice.rate)
    EspeakDriver.setProperty("pitch", voice.pitch)
    deadline = time.monotonic() + _RENDER_TIMEOUT_SECONDS
    while _espeak.IsPlaying() and time.monotonic() < deadline:
        time.sleep(0.001)


def _driver_print(*args: object, **_: object) -> None:
    log.debug(" ".join(str(a) for a in args))


def _read_wav(path: Path) -> Pcm16:
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2 or wav.getframerate() != ESPEAK_RATE:
            raise SynthesisError(
                f"unexpected eSpeak output: {wav.getnchannels()} channels, "
                f"{8 * wav.getsampwidth()} bits, {wav.getframerate()} Hz"
            )
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


_RENDER_TIMEOUT_SECONDS = 5.0
_RENDER_ATTEMPTS = 3
_espeak_lock = threading.Lock()
_espeak: _EspeakThread | None = None


def _espeak_thread() -> _EspeakThread:
    global _espeak
    with _espeak_lock:
        if _espeak is None:
            _espeak = _EspeakThread()
        return _espeak


@dataclass(slots=True)
class SynthesizerStats:
    renders: int = 0
    cache_hits: int = 0
    render_seconds: float = 0.0
    audio_seconds: float = 0.0


@dataclass(eq=False)
class Synthesizer:
    """Renders text to speech off the event loop, with an LRU cache keyed by text and voice.

    Every Synthesizer in the process shares the one eSpeak thread; each keeps its own cache.
    """

    cache_size: int = 512
    stats: SynthesizerStats = field(default_factory=SynthesizerStats)
    _cache: OrderedDict[tuple[str, Voice], SynthesizedSpeech] = field(
        default_factory=OrderedDict, repr=False
    )
    _mulaw: OrderedDict[tuple[str, Voice], bytes] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    async def render(self, text: str, voice: Voice) -> SynthesizedSpeech:
        """PCM16 mono at eSpeak's native 22,050 Hz; cached renders return at once."""
        key = (text, voice)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.stats.cache_hits += 1
                return cached
        if not text.strip():
            speech = SynthesizedSpeech(_empty_pcm(), ESPEAK_RATE, 0.0)
        else:
            espeak = _espeak_thread()
            loop = asyncio.get_running_loop()
            speech = await loop.run_in_executor(espeak.executor, espeak.render, text, voice)
        with self._lock:
            self.stats.renders += 1
            self.stats.render_seconds += speech.render_seconds
            self.stats.audio_seconds += speech.duration_seconds
            self._cache[key] = speech
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return speech

    async def prerender(self, texts: Iterable[str], voice: Voice) -> None:
        """Render static prompts (when a dialog loads) so calls find them ready as 8 kHz μ-law."""
        for text in dict.fromkeys(texts):
            await self.to_mulaw_8k(text, voice)

    async def to_mulaw_8k(self, text: str, voice: Voice) -> bytes:
        """Render and convert to 8 kHz μ-law for a phone line; conversions are cached too."""
        key = (text, voice)
        with self._lock:
            cached = self._mulaw.get(key)
            if cached is not None:
                self._mulaw.move_to_end(key)
                return cached
        speech = await self.render(text, voice)
        # Resampling costs a few ms per second of speech: off the loop and off the eSpeak thread.
        mulaw = await asyncio.get_running_loop().run_in_executor(None, speech.to_mulaw_8k)
        with self._lock:
            self._mulaw[key] = mulaw
            self._mulaw.move_to_end(key)
            while len(self._mulaw) > self.cache_size:
                self._mulaw.popitem(last=False)
        return mulaw

    async def voice_ids(self) -> frozenset[str]:
        """Every voice id eSpeak NG offers (what :class:`Voice` accepts)."""
        espeak = _espeak_thread()
        return await asyncio.get_running_loop().run_in_executor(espeak.executor, espeak.voice_ids)

    def cached(self, text: str, voice: Voice) -> bool:
        with self._lock:
            return (text, voice) in self._cache


def _empty_pcm() -> Pcm16:
    pcm = np.zeros(0, dtype=np.int16)
    pcm.flags.writeable = False
    return pcm
