"""Language packs: understanding (intents, amounts, dates, times) and speaking values aloud."""

from __future__ import annotations

from importlib import import_module
from typing import Final

from voicebot.dialog.languages.base import Language, Reading, SlotKind, TimeOfDay

SUPPORTED: Final = ("zh-CN", "en-US", "ko-KR")
_MODULES: Final = {"zh-CN": "zh", "en-US": "en", "ko-KR": "ko"}
# The zone a borrower is assumed to be in when the contact does not say.
DEFAULT_TIME_ZONES: Final = {"zh-CN": "Asia/Shanghai", "en-US": "America/New_York",
                             "ko-KR": "Asia/Seoul"}  # fmt: skip


def language_for(code: str) -> Language:
    """The pack for a script language; imported on first use (cn2an takes a while to load)."""
    try:
        module = _MODULES[code]
    except KeyError:
        supported = ", ".join(SUPPORTED)
        raise ValueError(f"unsupported language {code!r} (supported: {supported})") from None
    pack: Language = import_module(f"voicebot.dialog.languages.{module}").LANGUAGE
    return pack


__all__ = ["DEFAULT_TIME_ZONES", "SUPPORTED", "Language", "Reading", "SlotKind", "TimeOfDay",
           "language_for"]  # fmt: skip
