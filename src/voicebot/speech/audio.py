"""Telephone audio, pure and in memory: G.711 μ-law, resampling, 20 ms framing and an energy VAD.

PCM is signed 16-bit mono as a numpy ``int16`` array; μ-law is ``bytes``. Twilio's media streams
carry 8 kHz μ-law in 20 ms frames of 160 bytes; eSpeak NG renders 22,050 Hz PCM; Vosk models are
trained on 16 kHz.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

Pcm16 = NDArray[np.int16]

TELEPHONE_RATE: Final = 8_000
ESPEAK_RATE: Final = 22_050
VOSK_RATE: Final = 16_000
FRAME_MS: Final = 20
MULAW_FRAME_BYTES: Final = TELEPHONE_RATE * FRAME_MS // 1000
MULAW_SILENCE: Final = 0xFF


def _ulaw_expand_table() -> NDArray[np.int16]:
    # ITU-T G.191 STL ulaw_expand, evaluated for all 256 codes.
    codes = np.arange(256, dtype=np.int32)
    sign = np.where(codes < 0x80, -1, 1)
    inverted = ~codes & 0xFF
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    magnitude = (0x80 << exponent) + step * mantissa + step // 2 - 4 * 33
    table: NDArray[np.int16] = (sign * magnitude).astype(np.int16)
    return table


def _ulaw_compress_table() -> NDArray[np.uint8]:
    # ITU-T G.191 STL ulaw_compress, evaluated for every 16-bit sample (indexed by its bit pattern).
    # Negative samples use the one's complement, as the reference does, not the negation.
    samples = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
    absno = np.where(samples < 0, (~samples) >> 2, samples >> 2) + 33
    absno = np.minimum(absno, 0x1FFF)
    segno = np.ones_like(absno)
    shifted = absno >> 6
    while np.any(shifted):
        segno += shifted != 0
        shifted >>= 1
    high_nibble = 0x08 - segno
    low_nibble = 0x0F - ((absno >> segno) & 0x0F)
    code = (high_nibble << 4) | low_nibble
    code = np.where(samples >= 0, code | 0x80, code)
    table: NDArray[np.uint8] = code.astype(np.uint8)
    return table


_EXPAND: Final = _ulaw_expand_table()
_COMPRESS: Final = _ulaw_compress_table()


def mulaw_encode(pcm: Pcm16) -> bytes:
    """Encode 16-bit PCM to G.711 μ-law, bit-exact with the ITU-T reference encoder."""
    samples = np.asarray(pcm, dtype=np.int16)
    return _COMPRESS[samples.view(np.uint16)].tobytes()


def mulaw_decode(data: bytes) -> Pcm16:
    """Decode G.711 μ-law to 16-bit PCM (the standard expansion table)."""
    return _EXPAND[np.frombuffer(data, dtype=np.uint8)]


def pcm16_from_bytes(data: bytes) -> Pcm16:
    """Little-endian 16-bit PCM bytes (a WAV payload, a Vosk input) as samples."""
    if len(data) % 2:
        raise ValueError(f"PCM16 data must have an even length, got {len(data)} bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def pcm16_to_bytes(pcm: Pcm16) -> bytes:
    """Samples as little-endian 16-bit PCM bytes."""
    return np.asarray(pcm, dtype=np.int16).astype("<i2").tobytes()


def pcm16_from_float(signal: NDArray[np.floating]) -> Pcm16:
    """Float samples in [-1, 1] to 16-bit PCM, clipping what lies outside."""
    scaled = np.round(np.asarray(signal, dtype=np.float64) * 32767.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def duration_seconds(sample_count: int, sample_rate: int) -> float:
    return sample_count / sample_rate


_RESAMPLE_BLOCK: Final = 4096


@lru_cache(maxsize=16)
def _lowpass_polyphase(up: int, down: int) -> tuple[NDArray[np.float32], int]:
    """Kaiser-windowed sinc for rational resampling by up/down, split into ``up`` phases.

    Cut-off at 93 % of the lower Nyquist frequency, about 80 dB stop-band attenuation: for
    22,050 → 8,000 Hz the 3.4 kHz telephone band passes and nothing above 4 kHz aliases back.
    """
    factor = max(up, down)
    cutoff = 0.93 / factor  # relative to the upsampled Nyquist frequency
    zero_crossings = 24
    half_length = zero_crossings * factor
    n = np.arange(-half_length, half_length + 1, dtype=np.float64)
    taps = cutoff * np.sinc(cutoff * n) * np.kaiser(n.size, 8.0) * up
    # Pad so every phase has the same number of taps.
    per_phase = math.ceil(taps.size / up)
    padded = np.zeros(per_phase * up)
    padded[: taps.size] = taps
    # phases[p, k] = taps[p + k*up], then reversed along k (see resample)
    return padded.reshape(per_phase, up).T[:, ::-1].astype(np.float32), half_length


def resample(pcm: Pcm16, from_rate: int, to_rate: int) -> Pcm16:
    """Resample a whole signal by a rational factor with an anti-aliasing low-pass filter.

    Output length is ``ceil(len * to_rate / from_rate)``; the filter's delay is compensated, so
    the output is aligned with the input.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError("sample rates must be positive")
    samples = np.asarray(pcm, dtype=np.int16)
    if from_rate == to_rate or samples.size == 0:
        return samples.copy()
    g = math.gcd(from_rate, to_rate)
    up, down = to_rate // g, from_rate // g
    phases, delay = _lowpass_polyphase(up, down)
    per_phase = phases.shape[1]
    out_len = math.ceil(samples.size * up / down)
    # Output m sits at t = m*down + delay on the upsampled grid: it uses phase t % up and the
    # input samples just before t // up. Zero padding covers the filter's reach on both sides.
    padded = np.zeros(samples.size + 2 * per_phase + down, dtype=np.float32)
    padded[per_phase : per_phase + samples.size] = samples
    # Window w holds padded[w : w + per_phase]; the taps are stored reversed to match it.
    windows = np.lib.stride_tricks.sliding_window_view(padded, per_phase)
    # Phases repeat every ``up`` outputs, so a block of whole cycles uses one phase table.
    cycle_taps = phases[(np.arange(up, dtype=np.int64) * down + delay) % up]
    cycles_per_block = max(1, _RESAMPLE_BLOCK // up)
    n_cycles = math.ceil(out_len / up)
    values = np.empty(n_cycles * up, dtype=np.float32)
    for first in range(0, n_cycles, cycles_per_block):
        count = min(cycles_per_block, n_cycles - first)
        m = np.arange(first * up, (first + count) * up, dtype=np.int64)
        rows = np.minimum((m * down + delay) // up + 1, windows.shape[0] - 1).reshape(count, up)
        values[first * up : (first + count) * up] = np.einsum(
            "cuk,uk->cu", windows[rows], cycle_taps, optimize=False
        ).ravel()
    return np.clip(np.round(values[:out_len]), -32768, 32767).astype(np.int16)


def pcm_to_mulaw_8k(pcm: Pcm16, sample_rate: int) -> bytes:
    """PCM at any rate → 8 kHz μ-law, as a phone line carries it."""
    return mulaw_encode(resample(pcm, sample_rate, TELEPHONE_RATE))


def mulaw_frames(data: bytes, *, pad: bool = True) -> list[bytes]:
    """Split μ-law audio into 20 ms frames; the last is padded with silence unless ``pad``=False."""
    framer = MulawFramer()
    frames = framer.push(data)
    if pad:
        last = framer.flush()
        if last is not None:
            frames.append(last)
    return frames


@dataclass(slots=True)
class MulawFramer:
    """Cuts a μ-law byte stream into 20 ms frames, carrying the remainder to the next push."""

    frame_bytes: int = MULAW_FRAME_BYTES
    _carry: bytearray = field(default_factory=bytearray, repr=False)

    def push(self, data: bytes) -> list[bytes]:
        self._carry.extend(data)
        whole = len(self._carry) - len(self._carry) % self.frame_bytes
        frames = [
            bytes(self._carry[i : i + self.frame_bytes]) for i in range(0, whole, self.frame_bytes)
        ]
        del self._carry[:whole]
        return frames

    @property
    def pending(self) -> int:
        """Bytes waiting for a full frame."""
        return len(self._carry)

    def flush(self) -> bytes | None:
        """The remainder padded with silence to a whole frame, or None when nothing is left."""
        if not self._carry:
            return None
        frame = bytes(self._carry) + bytes([MULAW_SILENCE]) * (self.frame_bytes - len(self._carry))
        self._carry.clear()
        return frame

    def clear(self) -> None:
        self._carry.clear()


def frame_dbfs(pcm: Pcm16) -> float:
    """RMS level of a frame in dB relative to full scale; silence is -120 dBFS."""
    if pcm.size == 0:
        return -120.0
    rms = math.sqrt(float(np.mean(np.square(pcm.astype(np.float64)))))
    if rms <= 0.0:
        return -120.0
    return max(-120.0, 20.0 * math.log10(rms / 32768.0))


class VadEvent(enum.Enum):
    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"


@dataclass(frozen=True, slots=True)
class VadSettings:
    """Thresholds for :class:`VoiceActivityDetector`.

    A frame is speech when it is at least ``margin_db`` above the noise floor and above
    ``min_speech_dbfs``. Speech starts after ``start_ms`` of speech frames within
    ``start_window_ms``; it ends after ``hangover_ms`` without speech, or at ``max_utterance_ms``.
    The noise floor starts at the first frame's level, capped at ``min_speech_dbfs`` (a call may
    open with speech); it follows quieter frames quickly (``noise_fall``, a fraction per frame)
    and rises by at most ``noise_rise_db_per_s``, so pauses between words pull it down and steady
    line noise is learned within seconds.
    """

    frame_ms: int = FRAME_MS
    min_speech_dbfs: float = -45.0
    margin_db: float = 12.0
    start_ms: int = 60
    start_window_ms: int = 100
    hangover_ms: int = 600
    max_utterance_ms: int = 15_000
    noise_fall: float = 0.2
    noise_rise_db_per_s: float = 3.0

    def __post_init__(self) -> None:
        if self.frame_ms <= 0 or self.start_ms <= 0 or self.hangover_ms <= 0:
            raise ValueError("frame_ms, start_ms and hangover_ms must be positive")
        if self.start_window_ms < self.start_ms:
            raise ValueError("start_window_ms must be at least start_ms")
        if not 0.0 < self.noise_fall <= 1.0:
            raise ValueError("noise_fall must be in (0, 1]")
        if self.noise_rise_db_per_s < 0:
            raise ValueError("noise_rise_db_per_s must not be negative")


@dataclass(slots=True)
class VoiceActivityDetector:
    """Energy endpointer over fixed-size PCM frames (20 ms by default).

    ``SPEECH_START`` is the barge-in signal; ``SPEECH_END`` marks the end of an utterance.
    """

    settings: VadSettings = field(default_factory=VadSettings)
    in_speech: bool = False
    noise_dbfs: float | None = None
    _recent: list[bool] = field(default_factory=list, repr=False)
    _silence_ms: int = field(default=0, repr=False)
    _speech_ms: int = field(default=0, repr=False)

    def is_speech_level(self, level_dbfs: float) -> bool:
        s = self.settings
        floor = self.noise_dbfs if self.noise_dbfs is not None else -120.0
        return level_dbfs >= s.min_speech_dbfs and level_dbfs >= floor + s.margin_db

    def _track_noise(self, level: float) -> None:
        s = self.settings
        if self.noise_dbfs is None:
            self.noise_dbfs = min(level, s.min_speech_dbfs)
        elif level < self.noise_dbfs:
            self.noise_dbfs += s.noise_fall * (level - self.noise_dbfs)
        else:
            rise = s.noise_rise_db_per_s * s.frame_ms / 1000
            self.noise_dbfs = min(level, self.noise_dbfs + rise)

    def process(self, pcm: Pcm16) -> VadEvent | None:
        """Feed one frame; returns the event it triggers, if any."""
        s = self.settings
        level = frame_dbfs(pcm)
        # Judge the frame against the floor before the frame moves it.
        speech = self.is_speech_level(level)
        self._track_noise(level)
        if not self.in_speech:
            window = max(1, s.start_window_ms // s.frame_ms)
            self._recent.append(speech)
            del self._recent[:-window]
            if sum(self._recent) * s.frame_ms >= s.start_ms:
                self.in_speech = True
                self._recent.clear()
                self._silence_ms = 0
                self._speech_ms = s.start_ms
                return VadEvent.SPEECH_START
            return None
        self._speech_ms += s.frame_ms
        self._silence_ms = 0 if speech else self._silence_ms + s.frame_ms
        if self._silence_ms >= s.hangover_ms or self._speech_ms >= s.max_utterance_ms:
            self.in_speech = False
            self._silence_ms = 0
            self._speech_ms = 0
            return VadEvent.SPEECH_END
        return None

    def reset(self) -> None:
        """Forget the current utterance (the noise floor is kept)."""
        self.in_speech = False
        self._recent.clear()
        self._silence_ms = 0
        self._speech_ms = 0
