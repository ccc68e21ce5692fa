"""Prompts cut into sentences, so the first sentence plays while the next one is rendered.

Sentences are also the unit the synthesiser caches: the fixed sentences of a prompt that names a
slot ("확인하겠습니다." before the amount) are rendered once, when the dialog loads.
"""

from __future__ import annotations

import re

from voicebot.dialog import Dialog
from voicebot.dialog.script import RECORDING_NOTICE
from voicebot.dialog.templates import TemplateSyntaxError, parse_template

# A sentence ends at . ? ! followed by a space (so "3.5" stays whole), or at the full-width
# 。？！, which are not followed by spaces in Chinese.
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+|(?<=[。？！])\s*")


def sentences(text: str) -> list[str]:
    """``text`` as its sentences, in order, without empty pieces."""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece.strip()]


def static_sentences(dialog: Dialog) -> list[str]:
    """Every sentence the dialog says identically on every call, in script order: whole static
    prompts and the fixed sentences of prompts that name contact fields or slots."""
    fixed = {*dialog.script.constants, RECORDING_NOTICE}
    found: dict[str, None] = {}
    for text in dialog.static_prompts():
        found.update(dict.fromkeys(sentences(text)))
    for source in dialog.spoken:
        if set(dialog.template(source).names) <= fixed:
            continue
        for piece in sentences(source):
            try:
                template = parse_template(piece)
            except TemplateSyntaxError:
                continue  # a sentence cut through a placeholder: leave it to call time
            if set(template.names) <= fixed:
                found.update(dict.fromkeys(sentences(dialog.render_static(template))))
    return list(found)
