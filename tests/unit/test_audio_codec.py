"""G.711 μ-law against the ITU-T reference, the resampler's frequency response, 20 ms framing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicebot.speech.audio import (
    MULAW_FRAME_BYTES,
    MULAW_SILENCE,
    MulawFramer,
    Pcm16,
    mulaw_decode,
    mulaw_encode,
    mulaw_frames,
    pcm16_from_bytes,
    pcm16_from_float,
    pcm16_to_bytes,
    pcm_to_mulaw_8k,
    resample,
)

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


def tone(frequency: float, rate: int, seconds: float = 0.5, amplitude: float = 0.5) -> Pcm16:
    t = np.arange(int(rate * seconds)) / rate
    return pcm16_from_float(amplitude * np.sin(2 * math.pi * frequency * t))


def gain_db(before: Pcm16, after: Pcm16) -> float:
    # Ignore the edges, where the filter sees the zero padding.
    def rms(x: Pcm16) -> float:
        core = x[len(x) // 10 : -len(x) // 10].astype(np.float64)
        return float(np.sqrt(np.mean(core**2)))

    return 20 * math.log10(max(rms(after), 1e-9) / rms(before))


# (code, linear) pairs from the G.711 μ-law expansion table.
EXPANSION_VECTORS = [
    (0x00, -32124),
    (0x0F, -16764),
    (0x10, -15996),
    (0x3F, -1980),
    (0x70, -120),
    (0x7E, -8),
    (0x7F, 0),
    (0x80, 32124),
    (0x8F, 16764),
    (0xBF, 1980),
    (0xF0, 120),
    (0xFE, 8),
    (0xFF, 0),
]


@pytest.mark.parametrize(("code", "linear"), EXPANSION_VECTORS)
def test_mulaw_decode_matches_the_g711_table(code: int, linear: int) -> None:
    assert int(mulaw_decode(bytes([code]))[0]) == linear


@pytest.mark.parametrize(
    ("linear", "code"),
    [
        (0, 0xFF),
        (3, 0xFF),
        (4, 0xFE),
        (-1, 0x7F),
        (-4, 0x7F),
        (-5, 0x7E),
        (120, 0xF0),
        (-120, 0x70),
        (32767, 0x80),
        (-32768, 0x00),
        (32124, 0x80),
        (8158 * 4, 0x80),
    ],
)
def test_mulaw_encode_matches_the_itu_reference_encoder(linear: int, code: int) -> None:
    # Values from ITU-T G.191's ulaw_compress, which works on the one's complement of negatives.
    assert mulaw_encode(np.array([linear], dtype=np.int16)) == bytes([code])


def test_every_code_survives_decode_then_encode() -> None:
    codes = bytes(range(256))
    again = mulaw_encode(mulaw_decode(codes))
    # 0x7F is "negative zero": it decodes to 0, which encodes as 0xFF.
    assert [i for i in range(256) if again[i] != i] == [0x7F]


def test_encoding_is_symmetric_under_ones_complement() -> None:
    positive = np.frombuffer(mulaw_encode(ALL_SAMPLES[ALL_SAMPLES >= 0]), dtype=np.uint8)
    negative = np.frombuffer(mulaw_encode(~ALL_SAMPLES[ALL_SAMPLES >= 0]), dtype=np.uint8)
    assert np.array_equal(positive & 0x7F, negative)
    assert np.all(positive & 0x80)


def test_quantisation_error_stays_within_half_a_step() -> None:
    decoded = mulaw_decode(mulaw_encode(ALL_SAMPLES)).astype(np.int32)
    error = np.abs(decoded - ALL_SAMPLES.astype(np.int32))
    magnitude = np.abs(ALL_SAMPLES.astype(np.int32))
    inside = magnitude < 32000  # above the last decision level the encoder clips
    # The widest μ-law step is 1024 (segment 7): no sample may be further than half of it.
    assert int(error[inside].max()) <= 512
    # And small signals are fine-grained: within 8 below 256.
    assert int(error[magnitude < 256].max()) <= 8


def test_pcm16_bytes_round_trip_and_odd_length() -> None:
    samples = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    data = pcm16_to_bytes(samples)
    assert data[:4] == b"\x00\x00\x01\x00"
    assert np.array_equal(pcm16_from_bytes(data), samples)
    with pytest.raises(ValueError, match="even length"):
        pcm16_from_bytes(b"\x00")


@pytest.mark.parametrize("frequency", [300.0, 1000.0, 3000.0, 3400.0])
def test_telephone_band_passes_22050_to_8000(frequency: float) -> None:
    before = tone(frequency, 22_050)
    after = resample(before, 22_050, 8_000)
    assert len(after) == math.ceil(len(before) * 8_000 / 22_050)
    assert abs(gain_db(before, after)) < 0.5


@pytest.mark.parametrize("frequency", [4_300.0, 5_000.0, 6_000.0, 9_000.0])
def test_above_nyquist_tones_are_suppressed_22050_to_8000(frequency: float) -> None:
    before = tone(frequency, 22_050)
    # Without the low-pass these would alias into the band (5 kHz → 3 kHz) at full strength.
    assert gain_db(before, resample(before, 22_050, 8_000)) < -60


@pytest.mark.parametrize(("source", "target"), [(8_000, 22_050), (8_000, 16_000)])
def test_upsampling_keeps_the_band_and_adds_no_images(source: int, target: int) -> None:
    before = tone(1_000.0, source)
    after = resample(before, source, target)
    assert abs(gain_db(before, after)) < 0.5
    spectrum = np.abs(np.fft.rfft(after.astype(np.float64) * np.hanning(len(after))))
    freqs = np.fft.rfftfreq(len(after), 1 / target)
    image = spectrum[freqs > 4_200].max()  # the 7 kHz image of a 1 kHz tone at 8 kHz
    assert 20 * math.log10(image / spectrum.max()) < -60


def test_resampling_keeps_timing() -> None:
    impulse = np.zeros(2205, dtype=np.int16)
    impulse[1102] = 30_000
    out = resample(impulse, 22_050, 8_000)
    assert abs(int(np.argmax(np.abs(out))) - 1102 * 8_000 / 22_050) <= 1


def test_same_rate_and_empty_input_are_copies() -> None:
    samples = tone(440.0, 8_000, 0.01)
    assert np.array_equal(resample(samples, 8_000, 8_000), samples)
    assert resample(np.zeros(0, dtype=np.int16), 22_050, 8_000).size == 0
    with pytest.raises(ValueError):
        resample(samples, 0, 8_000)


def test_pcm_to_mulaw_8k_has_the_telephone_length() -> None:
    one_second = tone(440.0, 22_050, 1.0)
    assert len(pcm_to_mulaw_8k(one_second, 22_050)) == 8_000


def test_framer_carries_partial_frames_over() -> None:
    framer = MulawFramer()
    assert framer.push(b"\x01" * 100) == []
    assert framer.pending == 100
    frames = framer.push(b"\x02" * 300)
    assert [len(f) for f in frames] == [MULAW_FRAME_BYTES, MULAW_FRAME_BYTES]
    assert frames[0] == b"\x01" * 100 + b"\x02" * 60
    assert framer.pending == 400 - 320
    last = framer.flush()
    assert last is not None and len(last) == MULAW_FRAME_BYTES
    assert last.endswith(bytes([MULAW_SILENCE]) * (MULAW_FRAME_BYTES - 80))
    assert framer.flush() is None


def test_mulaw_frames_pads_only_when_asked() -> None:
    assert [len(f) for f in mulaw_frames(b"\x00" * 330)] == [160, 160, 160]
    assert [len(f) for f in mulaw_frames(b"\x00" * 330, pad=False)] == [160, 160]
    assert mulaw_frames(b"") == []
