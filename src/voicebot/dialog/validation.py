"""Checks a schema cannot make: names that must exist, the shape of the state graph, templates,
and the compliance rule that nothing about the loan is said before the borrower is identified."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from voicebot.dialog.script import (
    RECORDING_NOTICE,
    REPEAT,
    RETURN,
    UTTERANCE,
    DialogScript,
    Handler,
    HangupAction,
    RecordAction,
    RecordComplaint,
    RecordConfirmation,
    RecordDispute,
    RecordPromise,
    RecordRiskFlag,
    ScheduleCallBackAction,
    State,
    TransferAction,
)
from voicebot.dialog.templates import TemplateSyntaxError, parse_template

Path = tuple[str | int, ...]
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_IDENTITY = "identity"


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    message: str


SiteScope = Literal["notice", "voicemail", "transfer", "state", "everywhere"]


@dataclass(frozen=True, slots=True)
class TemplateSite:
    """Where a template is used: ``state`` is the state whose turn speaks it, if only one."""

    path: Path
    text: str
    scope: SiteScope
    state: str | None = None


def template_sites(script: DialogScript) -> Iterator[TemplateSite]:
    yield TemplateSite(("recording_notice",), script.recording_notice, "notice")
    yield TemplateSite(("voicemail",), script.voicemail, "voicemail")
    for key in ("no_input", "no_match"):
        for i, line in enumerate(getattr(script.defaults, key).say):
            yield TemplateSite(("defaults", key, "say", i), line, "everywhere")
    for intent, handler in script.globals.items():
        yield from _handler_sites(("globals", intent), handler, "everywhere", None)
    for name, state in script.states.items():
        base: Path = ("states", name)
        for key in ("say", "reprompt"):
            for i, line in enumerate(getattr(state, key) or ()):
                yield TemplateSite((*base, key, i), line, "state", name)
        for key in ("no_input", "no_match"):
            reprompt = getattr(state, key)
            for i, line in enumerate((reprompt.say or ()) if reprompt else ()):
                yield TemplateSite((*base, key, "say", i), line, "state", name)
        for i, action in enumerate(state.do):
            if isinstance(action, TransferAction):
                yield TemplateSite((*base, "do", i, "transfer"), action.transfer, "transfer", name)
        for intent, handler in (state.listen or {}).items():
            yield from _handler_sites((*base, "listen", intent), handler, "state", name)
        if state.fill:
            yield from _handler_sites((*base, "fill"), state.fill, "state", name)


def _handler_sites(
    base: Path, handler: Handler, scope: SiteScope, state: str | None
) -> Iterator[TemplateSite]:
    for i, line in enumerate(handler.say):
        yield TemplateSite((*base, "say", i), line, scope, state)
    for i, action in enumerate(handler.do):
        if isinstance(action, TransferAction):
            yield TemplateSite((*base, "do", i, "transfer"), action.transfer, "transfer", state)


def validate(script: DialogScript) -> list[Problem]:
    checker = _Checker(script)
    checker.run()
    return checker.problems


class _Checker:
    def __init__(self, script: DialogScript) -> None:
        self.script = script
        self.problems: list[Problem] = []

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(Problem(path, message))

    def run(self) -> None:
        self.check_names()
        self.check_intents()
        self.check_states()
        self.check_handlers()
        self.check_templates()
        self.check_graph()

    # Names

    def check_names(self) -> None:
        s = self.script
        seen: dict[str, str] = {}
        for kind, names in (("constant", s.constants), ("field", s.fields), ("slot", s.slots)):
            for name in names:
                if name in (RECORDING_NOTICE, UTTERANCE):
                    self.problem((f"{kind}s", name), f"{name!r} is a reserved name")
                elif name in seen:
                    self.problem(
                        (f"{kind}s", name), f"{kind} {name!r} has the name of a {seen[name]}"
                    )
                seen.setdefault(name, kind)
        self.state_ref(("start",), s.start)
        if s.on_max_duration is not None:
            self.state_ref(("on_max_duration",), s.on_max_duration)
        self.state_ref(("defaults", "no_input", "goto"), s.defaults.no_input.goto)
        self.state_ref(("defaults", "no_match", "goto"), s.defaults.no_match.goto)
        for intent, slots in s.volunteer.items():
            self.intent_ref(("volunteer", intent), intent)
            for i, slot in enumerate(slots):
                self.slot_ref(("volunteer", intent, i), slot)
        for intent in s.globals:
            self.intent_ref(("globals", intent), intent)

    def state_ref(self, path: Path, name: str) -> bool:
        if name not in self.script.states:
            self.problem(path, f"no state named {name!r}")
            return False
        return True

    def intent_ref(self, path: Path, name: str) -> None:
        if name not in self.script.intents:
            self.problem(path, f"no intent named {name!r}")

    def slot_ref(self, path: Path, name: str) -> bool:
        if name not in self.script.slots:
            self.problem(path, f"no slot named {name!r}")
            return False
        return True

    def kind_of(self, name: str) -> str | None:
        if name in self.script.slots:
            return self.script.slots[name].type
        if name in self.script.fields:
            return self.script.fields[name].type
        return None

    # Intents

    def check_intents(self) -> None:
        for name, intent in self.script.intents.items():
            for i, pattern in enumerate(intent.patterns):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    self.problem(("intents", name, "patterns", i), f"bad pattern: {exc}")

    # States

    def check_states(self) -> None:
        s = self.script
        for name, state in s.states.items():
            base: Path = ("states", name)
            for i, rule in enumerate(state.when_filled):
                for j, slot in enumerate(rule.slots):
                    self.slot_ref((*base, "when_filled", i, "slots", j), slot)
                self.state_ref((*base, "when_filled", i, "goto"), rule.goto)
            if state.next == REPEAT:
                self.problem((*base, "next"), "next cannot be $repeat: only a handler repeats")
            elif state.next not in (None, RETURN):
                self.state_ref((*base, "next"), state.next)
            for key in ("no_input", "no_match"):
                reprompt = getattr(state, key)
                if reprompt is not None and reprompt.goto is not None:
                    self.state_ref((*base, key, "goto"), reprompt.goto)
            for intent in state.listen or {}:
                self.intent_ref((*base, "listen", intent), intent)
            for i, intent in enumerate(state.exclude_globals):
                if intent not in s.globals:
                    self.problem((*base, "exclude_globals", i), f"no global intent {intent!r}")
            if state.fill:
                for i, slot in enumerate(state.fill.slots):
                    self.slot_ref((*base, "fill", "slots", i), slot)
            self.check_actions(base, state.do)
            if state.listens and state.ends_call:
                self.problem(base, f"state {name!r} ends the call, so it cannot listen")
            elif state.listens and state.next is not None:
                self.problem((*base, "next"), f"state {name!r} listens: its handlers go on")
            elif state.ends_call and state.next is not None:
                self.problem((*base, "next"), f"state {name!r} ends the call: next is unreachable")
            elif not (state.listens or state.ends_call or state.next):
                self.problem(
                    base,
                    f"state {name!r} has no way out: it neither listens, goes next, nor ends "
                    "the call",
                )
            if state.listens:
                self.check_dtmf(name, state)
        if s.start in s.states and not self.says_notice(s.states[s.start]):
            self.problem(("states", s.start, "say"), "the start state must say {recording_notice}")

    def says_notice(self, state: State) -> bool:
        for line in state.say:
            try:
                if RECORDING_NOTICE in parse_template(line).names:
                    return True
            except TemplateSyntaxError:
                continue
        return False

    def check_dtmf(self, name: str, state: State) -> None:
        s = self.script
        owners: dict[str, str] = {}
        handlers = list((state.listen or {}).items())
        if state.globals:
            handlers += [
                (i, h)
                for i, h in s.globals.items()
                if i not in state.exclude_globals and i not in (state.listen or {})
            ]
        for intent, handler in handlers:
            spec = s.intents.get(intent)
            digit = handler.dtmf or (spec.dtmf if spec else None)
            if digit is None:
                continue
            if digit in owners:
                self.problem(
                    ("states", name),
                    f"state {name!r}: DTMF {digit} selects both {owners[digit]!r} and {intent!r}",
                )
            owners[digit] = intent

    # Handlers and actions

    def check_handlers(self) -> None:
        for intent, handler in self.script.globals.items():
            self.check_handler(("globals", intent), handler)
        for name, state in self.script.states.items():
            for intent, handler in (state.listen or {}).items():
                self.check_handler(("states", name, "listen", intent), handler)
            if state.fill:
                self.check_handler(("states", name, "fill"), state.fill)

    def check_handler(self, base: Path, handler: Handler) -> None:
        for key in ("clear", "capture"):
            for i, slot in enumerate(getattr(handler, key)):
                self.slot_ref((*base, key, i), slot)
        for slot, source in handler.set.items():
            if not self.slot_ref((*base, "set", slot), slot):
                continue
            source_kind = self.kind_of(source)
            target_kind = self.script.slots[slot].type
            if source_kind is None:
                self.problem((*base, "set", slot), f"no field or slot named {source!r}")
            elif target_kind != "text" and source_kind != target_kind:
                self.problem(
                    (*base, "set", slot),
                    f"cannot set {target_kind} slot {slot!r} from {source_kind} {source!r}",
                )
        self.check_actions(base, handler.do)
        if handler.goto is None and not handler.ends_call:
            self.problem(base, "handler has no goto and does not end the call")
        elif handler.goto is not None and handler.ends_call:
            self.problem((*base, "goto"), "handler ends the call: its goto is never reached")
        elif handler.goto not in (None, REPEAT, RETURN):
            self.state_ref((*base, "goto"), handler.goto)

    def check_actions(self, base: Path, actions: Sequence[object]) -> None:
        for i, action in enumerate(actions):
            path: Path = (*base, "do", i)
            if isinstance(action, RecordAction):
                self.check_record((*path, "record"), action)
            elif isinstance(action, ScheduleCallBackAction) and action.schedule_callback.at:
                at = action.schedule_callback.at
                if self.kind_of(at) != "datetime":
                    self.problem((*path, "schedule_callback", "at"), f"{at!r} is no datetime slot")
            if isinstance(action, TransferAction | HangupAction) and i != len(actions) - 1:
                self.problem(path, "actions after the call ends are never run")

    def check_record(self, path: Path, action: RecordAction) -> None:
        record = action.record
        if isinstance(record, RecordPromise):
            for key, article in (("amount", "an"), ("date", "a")):
                ref = getattr(record, key)
                if self.kind_of(ref) != key:
                    self.problem((*path, key), f"{ref!r} is not {article} {key} field or slot")
        if (
            isinstance(record, RecordComplaint)
            and record.category in self.script.slots
            and self.script.slots[record.category].type != "choice"
        ):
            self.problem((*path, "category"), f"{record.category!r} is not a choice slot")
        if isinstance(record, RecordComplaint | RecordDispute | RecordRiskFlag):
            text = record.text
            if text != UTTERANCE and self.kind_of(text) != "text":
                self.problem((*path, "text"), f"{text!r} is neither 'utterance' nor a text slot")
        if isinstance(record, RecordConfirmation) and not all(record.fields):
            self.problem((*path, "fields"), "confirmation fields must not be empty")

    # Templates

    def check_templates(self) -> None:
        s = self.script
        known = {*s.constants, *s.fields, *s.slots, RECORDING_NOTICE}
        private = {name for name, spec in s.fields.items() if spec.private}
        early = self.states_before_identity()
        for site in template_sites(s):
            try:
                names = parse_template(site.text).names
            except TemplateSyntaxError as exc:
                self.problem(site.path, str(exc))
                continue
            for name in names:
                if name not in known:
                    self.problem(site.path, f"template names unknown field {{{name}}}")
                elif site.scope in ("notice", "transfer") and name not in s.constants:
                    self.problem(site.path, f"{{{name}}} is not a constant (only constants here)")
                elif site.scope == "voicemail" and (name in private or name in s.slots):
                    self.problem(site.path, f"the voicemail must not mention {{{name}}}")
                elif name in private and (
                    site.scope == "everywhere" or (site.state is not None and site.state in early)
                ):
                    where = f"state {site.state!r}" if site.state else "a prompt used everywhere"
                    self.problem(
                        site.path,
                        f"{where} may speak before the borrower's identity is confirmed, "
                        f"so it must not mention {{{name}}}",
                    )
            if site.scope == "transfer" and all(name in s.constants for name in names):
                number = parse_template(site.text).render(lambda n: s.constants[n])
                if not _E164.match(number):
                    self.problem(site.path, f"transfer number {number!r} is not E.164 (+…)")

    # The state graph

    def edges(self, name: str, *, before_identity: bool = False) -> Iterator[str]:
        """States ``name`` can lead to (when ``before_identity``: without confirming identity)."""
        s = self.script
        state = s.states[name]
        if before_identity and _verifies(state.do):
            return
        for rule in state.when_filled:
            yield rule.goto
        if state.next and state.next not in (REPEAT, RETURN):
            yield state.next
        if not state.listens:
            return
        handlers = [*(state.listen or {}).values(), *([state.fill] if state.fill else [])]
        if state.globals:
            handlers += [h for i, h in s.globals.items() if i not in state.exclude_globals]
        for handler in handlers:
            if before_identity and _verifies(handler.do):
                continue
            if handler.goto == REPEAT:
                yield name
            elif handler.goto not in (None, RETURN):
                yield handler.goto
        for key in ("no_input", "no_match"):
            reprompt = getattr(state, key)
            yield (reprompt.goto if reprompt and reprompt.goto else getattr(s.defaults, key).goto)

    def walk(self, roots: list[str], *, before_identity: bool = False) -> set[str]:
        states = self.script.states
        seen: set[str] = set()
        queue = deque(root for root in roots if root in states)
        while queue:
            name = queue.popleft()
            if name in seen:
                continue
            seen.add(name)
            queue.extend(
                t for t in self.edges(name, before_identity=before_identity) if t in states
            )
        return seen

    def roots(self) -> list[str]:
        s = self.script
        return [s.start, *([s.on_max_duration] if s.on_max_duration else [])]

    def states_before_identity(self) -> set[str]:
        return self.walk(self.roots(), before_identity=True)

    def check_graph(self) -> None:
        s = self.script
        reachable = self.walk(self.roots())
        for name in s.states:
            if name not in reachable:
                self.problem(("states", name), f"state {name!r} is unreachable")
        # A state that returns goes back to a listening state, which is checked on its own.
        ending = {name for name, st in s.states.items() if st.ends_call or st.next == RETURN}
        leads_to_end = set(ending)
        changed = True
        while changed:
            changed = False
            for name in s.states:
                if name not in leads_to_end and any(t in leads_to_end for t in self.edges(name)):
                    leads_to_end.add(name)
                    changed = True
        for name in s.states:
            state = s.states[name]
            if name not in leads_to_end and (state.listens or state.next or state.when_filled):
                self.problem(("states", name), f"state {name!r} never leads to the end of the call")
        self.check_entry_loops()

    def check_entry_loops(self) -> None:
        """A loop of states that move on without listening would never give the borrower a turn."""
        s = self.script

        def entry_edges(name: str) -> list[str]:
            state = s.states[name]
            targets = [rule.goto for rule in state.when_filled]
            if not state.listens and state.next and state.next != RETURN:
                targets.append(state.next)
            return [t for t in targets if t in s.states]

        reported: set[frozenset[str]] = set()
        for start in s.states:
            stack: list[tuple[str, list[str]]] = [(start, [start])]
            while stack:
                name, trail = stack.pop()
                for target in entry_edges(name):
                    if target == start:
                        loop = frozenset(trail)
                        if loop not in reported:
                            reported.add(loop)
                            shown = " → ".join([*trail, start])
                            self.problem(("states", start), f"loop without listening: {shown}")
                    elif target not in trail and len(trail) < len(s.states):
                        stack.append((target, [*trail, target]))


def _verifies(actions: Sequence[object]) -> bool:
    return any(
        isinstance(action, RecordAction)
        and isinstance(action.record, RecordConfirmation)
        and _IDENTITY in action.record.fields
        for action in actions
    )
