"""What the analyst role sees of a borrower: numbers and names masked, the rest as stored."""

from __future__ import annotations

from voicebot.domain.phones import mask_phone

__all__ = ["mask_name", "mask_phone"]


def mask_name(name: str) -> str:
    """Keep each word's first character: ``张三`` → ``张*``, ``Jane Doe`` → ``J*** D**``."""
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in name.split(" "))
