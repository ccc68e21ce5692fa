"""What every call session shares: database, carrier, speech models, synthesiser, dialogs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.calls.dialogs import DialogCatalog
from voicebot.config import Settings
from voicebot.dialog import Dialog
from voicebot.speech.audio import VadSettings
from voicebot.speech.recognition import Recognizer, SpeechModels
from voicebot.speech.synthesis import Synthesizer
from voicebot.telephony.carrier import Carrier

log = logging.getLogger(__name__)


def call_grammar(dialog: Dialog) -> list[str]:
    """Every phrase any listening state of the dialog accepts, in a stable order.

    One grammar for the whole call keeps the recogniser warm: changing a Vosk grammar builds a
    new decoder whose feature pipeline has not heard the caller yet.
    """
    phrases: dict[str, None] = {}
    for listen in dialog.listens.values():
        phrases.update(dict.fromkeys(listen.grammar()))
    return list(phrases)


@dataclass(eq=False)
class CallServices:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    carrier: Carrier
    speech_models: SpeechModels
    synthesizer: Synthesizer
    dialogs: DialogCatalog
    owns_speech: bool = True  # close the speech models at shutdown (not when they were lent)
    _grammars: dict[tuple[str, int, str], list[str]] = field(default_factory=dict)
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def vad(self) -> VadSettings:
        return VadSettings(hangover_ms=self.settings.media_end_of_speech_ms)

    def grammar(self, dialog: Dialog) -> list[str]:
        key = (dialog.id, dialog.version, dialog.script.language)
        grammar = self._grammars.get(key)
        if grammar is None:
            grammar = self._grammars[key] = call_grammar(dialog)
        return grammar

    async def open_recognizer(self, dialog: Dialog) -> Recognizer:
        """A recogniser for one call on this dialog, with the call-wide grammar."""
        return await self.speech_models.recognizer(dialog.script.language, self.grammar(dialog))

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run fire-and-forget work (a hang-up), keeping a reference until it is done."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def prepare(self, dialog: Dialog) -> None:
        """A call on this dialog is about to start: load its language's model in the background
        (the first call's opening prompt plays while the model loads)."""
        language = dialog.script.language
        if self.speech_models.available(language):
            self.spawn(self._load_model(language), name=f"vosk-{language}")

    async def _load_model(self, language: str) -> None:
        try:
            await self.speech_models.get(language)
        except Exception:
            log.exception("the speech model for %s failed to load", language)

    async def warm_up(self, dialog_ids: Iterable[str] | None = None) -> None:
        """Load dialogs (every one in the dialogs directory by default), render their fixed
        sentences and load each language's speech model, so the first calls wait for nothing."""
        if dialog_ids is None:
            dialog_ids = await asyncio.to_thread(self.dialogs.available)
        for dialog_id in dialog_ids:
            try:
                dialog = await self.dialogs.ready(dialog_id)
            except (LookupError, ValueError) as exc:
                log.warning("dialog %s not loaded: %s", dialog_id, str(exc).splitlines()[0])
                continue
            language = dialog.script.language
            if self.speech_models.available(language):
                await self.speech_models.get(language)

    async def aclose(self) -> None:
        tasks = list(self._background)
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.dialogs.aclose()
        if self.owns_speech:
            await asyncio.to_thread(self.speech_models.close)


# Sentences cached by the synthesiser (each ~130 KB as PCM plus μ-law): fixed sentences of the
# dialogs and the contact-specific ones of the calls in progress.
SYNTHESIS_CACHE_SENTENCES = 384


def build_call_services(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    carrier: Carrier,
    *,
    speech_models: SpeechModels | None = None,
    synthesizer: Synthesizer | None = None,
) -> CallServices:
    """The services as the app runs them. Nothing heavy happens here: models and dialogs load
    when the first call needs them (or on ``warm_up``). Speech models and a synthesiser passed
    in are shared, not owned (tests load the Korean model once per session)."""
    synthesizer = synthesizer or Synthesizer(cache_size=SYNTHESIS_CACHE_SENTENCES)
    return CallServices(
        settings=settings,
        sessionmaker=sessionmaker,
        carrier=carrier,
        speech_models=speech_models or SpeechModels(),
        synthesizer=synthesizer,
        dialogs=DialogCatalog(settings.dialogs_dir, synthesizer),
        owns_speech=speech_models is None,
    )
