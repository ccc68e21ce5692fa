"""Reading ``dialogs/*.yaml``: YAML with line numbers, the schema, then the semantic checks.

``check_dialog`` lists every problem as ``DialogError(file, line, message)``; ``load_dialog``
refuses a file with problems by raising ``DialogInvalid`` carrying the same errors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from voicebot.dialog.compiled import Dialog, compile_dialog
from voicebot.dialog.script import DialogScript
from voicebot.dialog.validation import validate

_BOOL_TAG = "tag:yaml.org,2002:bool"


@dataclass(frozen=True, slots=True)
class DialogError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class DialogInvalid(ValueError):
    """A dialog file that failed its checks; ``errors`` holds every problem found."""

    def __init__(self, errors: Sequence[DialogError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


class _ScriptLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. ``yes``, ``no``, ``on`` and ``off`` stay strings, since
    in a script they are intent names and phrases.

    No aliases (``*name``), and no deeper nesting than a script has any use for: either could
    make a small file cost minutes or overflow the stack (a "billion laughs" file)."""

    MAX_DEPTH = 64

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._refuse("aliases (*name) are not allowed in a dialog file: write the value out")
        self._depth += 1
        try:
            if self._depth > self.MAX_DEPTH:
                self._refuse(f"nested more than {self.MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _refuse(self, problem: str) -> None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        raise yaml.composer.ComposerError(None, None, problem, mark)


_ScriptLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ScriptLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_Positions = dict[tuple[str, ...], int]


def check_dialog(path: str | Path) -> list[DialogError]:
    """Every problem in a dialog file, in line order (empty when the file is good)."""
    return _read(path)[1]


def load_dialog(path: str | Path) -> Dialog:
    """The dialog in a file, ready to run; raises DialogInvalid if it has any problem."""
    dialog, errors = _read(path)
    if dialog is None:
        raise DialogInvalid(errors)
    return dialog


def check_dialog_text(text: str, file: str = "<dialog>") -> list[DialogError]:
    return _parse(text, file)[1]


def load_dialog_text(text: str, file: str = "<dialog>") -> Dialog:
    dialog, errors = _parse(text, file)
    if dialog is None:
        raise DialogInvalid(errors)
    return dialog


def _read(path: str | Path) -> tuple[Dialog | None, list[DialogError]]:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [DialogError(file, 1, f"cannot read the file: {exc}")]
    return _parse(text, file)


def _parse(text: str, file: str) -> tuple[Dialog | None, list[DialogError]]:
    loader = _ScriptLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [DialogError(file, 1, "the file is empty")]
        positions: _Positions = {(): node.start_mark.line + 1}
        errors = [DialogError(file, line, message) for line, message in _index(node, (), positions)]
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        return None, [DialogError(file, mark.line + 1 if mark else 1, f"YAML: {problem}")]
    except yaml.YAMLError as exc:
        return None, [DialogError(file, 1, f"YAML: {exc}")]
    finally:
        loader.dispose()
    if errors:  # duplicate keys: what YAML kept is not what the author wrote
        return None, errors
    if not isinstance(data, dict):
        message = "a dialog is a mapping of keys (id, version, states, …)"
        return None, [DialogError(file, 1, message)]
    try:
        script = DialogScript.model_validate(data)
    except ValidationError as exc:
        errors += [_schema_error(file, error, positions) for error in exc.errors()]
        return None, _sorted(errors)
    errors += [
        DialogError(file, _line(problem.path, positions), problem.message)
        for problem in validate(script)
    ]
    if errors:
        return None, _sorted(errors)
    return compile_dialog(script, file), []


def _index(node: yaml.Node, path: tuple[str, ...], positions: _Positions) -> list[tuple[int, str]]:
    """Record the line of every key and list item under ``node``; report duplicate keys (which
    YAML would otherwise resolve silently to the last one)."""
    problems: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if (*path, key) in positions:
                first = positions[(*path, key)]
                problems.append((line, f"duplicate key {key!r} (first on line {first})"))
                continue
            positions[(*path, key)] = line
            problems += _index(value_node, (*path, key), positions)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            positions[(*path, str(i))] = item.start_mark.line + 1
            problems += _index(item, (*path, str(i)), positions)
    return problems


def _known_prefix(loc: Sequence[object], positions: _Positions) -> tuple[str, ...]:
    """The part of an error location that exists in the YAML; other parts (union tags, model
    names) are skipped."""
    path: tuple[str, ...] = ()
    for part in loc:
        candidate = (*path, str(part))
        if candidate in positions:
            path = candidate
    return path


def _line(loc: Sequence[object], positions: _Positions) -> int:
    return positions[_known_prefix(loc, positions)]


def _schema_error(file: str, error: ErrorDetails, positions: _Positions) -> DialogError:
    loc = error["loc"]
    path = _known_prefix(loc, positions)
    where = ".".join(path) or "top level"
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    if kind == "missing":
        message = f"{where}: missing key {str(loc[-1])!r}"
    elif kind == "extra_forbidden":
        parent = ".".join(path[:-1]) or "top level"
        message = f"{parent}: unknown key {str(loc[-1])!r}"
    else:
        message = f"{where}: {message}"
    return DialogError(file, positions[path], message)


def _sorted(errors: list[DialogError]) -> list[DialogError]:
    return sorted(dict.fromkeys(errors), key=lambda error: error.line)
