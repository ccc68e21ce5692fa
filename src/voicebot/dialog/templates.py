"""Prompt templates: ``{name}`` placeholders for constants, contact fields and slots; ``{{`` and
``}}`` for literal braces."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class TemplateSyntaxError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text and placeholder names, alternating."""

    source: str
    parts: tuple[str | Placeholder, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(part.name for part in self.parts if isinstance(part, Placeholder))

    def render(self, value_of: Callable[[str], str]) -> str:
        return "".join(
            part if isinstance(part, str) else value_of(part.name) for part in self.parts
        )


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str


def parse_template(source: str) -> Template:
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(source):
        literal.append(source[position : match.start()])
        position = match.end()
        token = match[0]
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        name = match[1]
        if name is None:
            raise TemplateSyntaxError(
                f"unmatched {token!r} in template {source!r} (write {token * 2} for a brace)"
            )
        if not _NAME.match(name):
            raise TemplateSyntaxError(f"{{{name}}} is not a field name in template {source!r}")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(Placeholder(name))
    literal.append(source[position:])
    if "".join(literal):
        parts.append("".join(literal))
    return Template(source, tuple(parts))
