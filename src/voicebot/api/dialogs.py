"""The answer to a campaign whose dialog the calls could not run, wherever the API meets it:
making or editing the campaign, starting it, importing its contacts."""

from __future__ import annotations

import asyncio

from fastapi import HTTPException

from voicebot.api.errors import api_error
from voicebot.calls.dialogs import DialogCatalog, DialogNotFound
from voicebot.dialog import DialogInvalid


async def unusable_dialog(
    dialogs: DialogCatalog,
    dialog_id: str,
    problem: DialogNotFound | DialogInvalid,
    *,
    status: int,
) -> HTTPException:
    """``unknown_dialog`` (naming the dialogs installed) or ``invalid_dialog`` (with the first
    of its problems, as ``voicebot dialog check`` words it)."""
    if isinstance(problem, DialogNotFound):
        installed = ", ".join(await asyncio.to_thread(dialogs.available)) or "none"
        return api_error(
            status,
            "unknown_dialog",
            f"dialog {dialog_id!r} is not in {dialogs.directory} (installed: {installed})",
            field="dialog_id",
            dialog_id=dialog_id,
        )
    first = problem.errors[0] if problem.errors else problem
    return api_error(
        status,
        "invalid_dialog",
        f"dialog {dialog_id!r} fails its checks ({len(problem.errors)} problems; "
        f"`voicebot dialog check` lists them), first: {first}",
        field="dialog_id",
        dialog_id=dialog_id,
    )
