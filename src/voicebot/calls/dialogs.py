"""The dialogs calls run: ``<dialogs_dir>/<dialog_id>.yaml``, loaded once and kept ready.

Loading validates the file (a bad one is refused with ``dialog check``'s message); the first
use for a call starts rendering the dialog's fixed sentences in the background, so most
prompts are audio already when a call needs them.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from voicebot.calls.prompts import static_sentences
from voicebot.dialog import Dialog, load_dialog
from voicebot.domain.campaigns import check_dialog_id
from voicebot.speech.synthesis import SynthesisError, Synthesizer, Voice

log = logging.getLogger(__name__)


class DialogNotFound(LookupError):
    pass


def dialog_voice(dialog: Dialog) -> Voice:
    """The bot's voice: the script's eSpeak NG voice at the default rate and pitch."""
    return Voice(dialog.script.voice)


class DialogCatalog:
    """Dialogs by id, loaded on first use; a call's first use also prerenders its fixed
    sentences (an import or a campaign only reading or checking the script does not)."""

    def __init__(self, directory: str | Path, synthesizer: Synthesizer | None) -> None:
        self.directory = Path(directory)
        self._synthesizer = synthesizer
        self._loads: dict[str, asyncio.Task[Dialog]] = {}
        self._prerenders: dict[str, asyncio.Task[None]] = {}

    def path(self, dialog_id: str) -> Path:
        try:
            check_dialog_id(dialog_id)
        except ValueError as exc:
            raise DialogNotFound(str(exc)) from None
        return self.directory / f"{dialog_id}.yaml"

    async def get(self, dialog_id: str, *, prerender: bool = True) -> Dialog:
        """The dialog; raises DialogNotFound, or DialogInvalid naming every problem in the file.
        ``prerender=False`` when only its script is read (a contact import checking fields):
        the first call's ``get`` starts rendering its sentences then."""
        task = self._loads.get(dialog_id)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.create_task(self._load(dialog_id), name=f"dialog-{dialog_id}")
            self._loads[dialog_id] = task
        dialog = await asyncio.shield(task)
        if prerender and self._synthesizer is not None and dialog_id not in self._prerenders:
            self._prerenders[dialog_id] = asyncio.create_task(
                self._prerender(dialog), name=f"prerender-{dialog_id}"
            )
        return dialog

    async def check(self, dialog_id: str) -> None:
        """Raise what :meth:`get` would (DialogNotFound, DialogInvalid), without keeping the
        dialog or rendering its prompts: for a campaign that names it, long before a call."""
        task = self._loads.get(dialog_id)
        if task is not None and task.done() and not task.cancelled() and not task.exception():
            return
        await self._load(dialog_id)

    def available(self) -> list[str]:
        return sorted(path.stem for path in self.directory.glob("*.yaml"))

    async def _load(self, dialog_id: str) -> Dialog:
        path = self.path(dialog_id)
        if not await asyncio.to_thread(path.is_file):
            raise DialogNotFound(f"no dialog {dialog_id!r}: {path} does not exist")
        return await asyncio.to_thread(load_dialog, path)

    async def ready(self, dialog_id: str) -> Dialog:
        """The dialog, once its fixed sentences are rendered too."""
        dialog = await self.get(dialog_id)
        task = self._prerenders.get(dialog_id)
        if task is not None:
            await asyncio.shield(task)
        return dialog

    async def _prerender(self, dialog: Dialog) -> None:
        assert self._synthesizer is not None
        texts = static_sentences(dialog)
        try:
            await self._synthesizer.prerender(texts, dialog_voice(dialog))
        except SynthesisError as exc:
            log.warning("dialog %s: prompts not prerendered: %s", dialog.id, exc)
            return
        log.info("dialog %s: %d fixed sentences prerendered", dialog.id, len(texts))

    async def aclose(self) -> None:
        tasks = [*self._prerenders.values(), *(t for t in self._loads.values() if not t.done())]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
