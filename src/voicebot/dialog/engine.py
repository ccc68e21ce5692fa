"""The dialog engine: ``step(state, event) -> (state, actions)``, a pure function.

Start a call with ``new_call(dialog, context)`` and feed it ``CallStarted``; then feed every
event as it happens. The state is immutable; it keeps the transcript, the outcomes and the event
log, so ``replay`` of ``state.events`` rebuilds the same state and actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, assert_never

from voicebot.dialog.actions import (
    Action,
    Hangup,
    Listen,
    OptOut,
    RecordOutcome,
    Say,
    ScheduleCallBack,
    StopSpeaking,
    Transfer,
)
from voicebot.dialog.compiled import Dialog
from voicebot.dialog.context import CallContext
from voicebot.dialog.events import (
    CallStarted,
    DtmfPressed,
    Event,
    HungUp,
    MaxDurationReached,
    NoInput,
    PromptFinished,
    Utterance,
)
from voicebot.dialog.languages import Reading
from voicebot.dialog.languages.base import CENT
from voicebot.dialog.outcomes import (
    CallBackRequest,
    Complaint,
    Confirmation,
    Dispute,
    OptOutRequest,
    Outcome,
    PromiseToPay,
    RiskFlag,
    WrongParty,
)
from voicebot.dialog.script import (
    RECORDING_NOTICE,
    REPEAT,
    RETURN,
    UTTERANCE,
    Handler,
    HangupAction,
    OptOutAction,
    RecordAction,
    RecordComplaint,
    RecordConfirmation,
    RecordDispute,
    RecordPromise,
    RecordRiskFlag,
    RecordWrongParty,
    ScheduleCallBackAction,
    State,
    TransferAction,
)
from voicebot.dialog.script import (
    Action as ScriptAction,
)
from voicebot.dialog.transcript import Turn
from voicebot.dialog.understanding import SlotValue, best_intent, extract_slot, mentions

Phase = Literal["waiting", "active", "ended"]
_MAX_HOPS = 64  # states entered in one step; the validator rejects loops, this guards the engine


class DialogRuntimeError(RuntimeError):
    """The script asked for something impossible at run time (a slot with no value, a loan field
    before identity was confirmed). Validation prevents these in shipped scripts."""


@dataclass(frozen=True)
class CallState:
    dialog: Dialog
    context: CallContext
    phase: Phase = "waiting"
    node: str | None = None  # the current state's name
    slots: Mapping[str, SlotValue] = field(default_factory=lambda: MappingProxyType({}))
    identity_confirmed: bool = False
    no_input_count: int = 0
    no_match_count: int = 0
    # Listening states a global intent's detour interrupted, innermost last: ``$return`` pops one.
    return_to: tuple[str, ...] = ()
    outcomes: tuple[Outcome, ...] = ()
    turns: tuple[Turn, ...] = ()
    events: tuple[Event, ...] = ()
    playing: tuple[int, ...] = ()  # prompts said and not yet finished, oldest first
    next_prompt_id: int = 1
    started_at: datetime | None = None
    end_reason: str | None = None
    last_utterance: str = ""
    timed_out: bool = False

    @property
    def ended(self) -> bool:
        return self.phase == "ended"

    @property
    def listen(self) -> Listen | None:
        """The grammar the current state listens with (None once the call has ended)."""
        if self.phase != "active" or self.node is None:
            return None
        return self.dialog.listens.get(self.node)


def new_call(dialog: Dialog, context: CallContext) -> CallState:
    return CallState(dialog=dialog, context=context)


def step(state: CallState, event: Event) -> tuple[CallState, tuple[Action, ...]]:
    """Apply one event; returns the new state and what the session must do, in order."""
    run = _Step(state, event)
    run.handle()
    return run.finish()


def replay(
    dialog: Dialog, context: CallContext, events: Iterable[Event]
) -> tuple[CallState, list[Action]]:
    """Feed a recorded event log through a fresh call: the same events give the same actions."""
    state = new_call(dialog, context)
    actions: list[Action] = []
    for event in events:
        state, produced = step(state, event)
        actions.extend(produced)
    return state, actions


class _Step:
    """One step's working copy of the state; ``finish`` freezes it again."""

    def __init__(self, state: CallState, event: Event) -> None:
        self.original = state
        self.event = event
        self.dialog = state.dialog
        self.script = state.dialog.script
        self.language = state.dialog.language
        self.context = state.context
        self.phase: Phase = state.phase
        self.node = state.node
        self.slots = dict(state.slots)
        self.identity_confirmed = state.identity_confirmed
        self.no_input_count = state.no_input_count
        self.no_match_count = state.no_match_count
        self.return_to = list(state.return_to)
        self.outcomes = list(state.outcomes)
        self.turns = list(state.turns)
        self.playing = list(state.playing)
        self.next_prompt_id = state.next_prompt_id
        self.started_at = state.started_at
        self.end_reason = state.end_reason
        self.last_utterance = state.last_utterance
        self.timed_out = state.timed_out
        self.actions: list[Action] = []
        self._reading: Reading | None = None

    def finish(self) -> tuple[CallState, tuple[Action, ...]]:
        state = replace(
            self.original,
            phase=self.phase,
            node=self.node,
            slots=MappingProxyType(self.slots),
            identity_confirmed=self.identity_confirmed,
            no_input_count=self.no_input_count,
            no_match_count=self.no_match_count,
            return_to=tuple(self.return_to),
            outcomes=tuple(self.outcomes),
            turns=tuple(self.turns),
            events=(*self.original.events, self.event),
            playing=tuple(self.playing),
            next_prompt_id=self.next_prompt_id,
            started_at=self.started_at,
            end_reason=self.end_reason,
            last_utterance=self.last_utterance,
            timed_out=self.timed_out,
        )
        return state, tuple(self.actions)

    # Dispatch

    def handle(self) -> None:
        event = self.event
        if isinstance(event, PromptFinished):
            self.prompt_finished(event)
            return
        if self.phase == "ended":
            return
        if isinstance(event, CallStarted):
            if self.phase == "waiting":
                self.start(event)
            return
        if self.phase == "waiting":
            return
        if isinstance(event, HungUp):
            self.end("hung_up")
            return
        if isinstance(event, MaxDurationReached) or self.past_max_duration():
            partial = isinstance(event, Utterance) and event.partial
            if isinstance(event, DtmfPressed | Utterance) and not partial:
                self.note_turn(event)  # too late to act on, but the transcript keeps it
            self.max_duration()
            return
        if isinstance(event, Utterance):
            if event.partial:
                if self.language.normalize(event.text):
                    self.barge_in()
            else:
                self.heard(event)
        elif isinstance(event, DtmfPressed):
            self.pressed(event)
        elif isinstance(event, NoInput):
            self.no_input()
        else:
            assert_never(event)

    def start(self, event: CallStarted) -> None:
        self.phase = "active"
        self.started_at = event.at
        if event.answered_by == "machine":
            self.say_lines([self.script.voicemail], barge_in=False)
            self.hang_up("voicemail")
            return
        self.enter(self.script.start)

    def past_max_duration(self) -> bool:
        if self.timed_out or self.started_at is None:
            return False
        return self.event.at - self.started_at >= timedelta(seconds=self.script.max_call_seconds)

    def max_duration(self) -> None:
        if self.timed_out:
            return
        self.timed_out = True
        if self.script.on_max_duration is None:
            self.hang_up("max_duration")
        else:
            self.enter(self.script.on_max_duration)

    # States

    @property
    def state(self) -> State:
        assert self.node is not None
        return self.script.states[self.node]

    def enter(self, name: str) -> None:
        for _ in range(_MAX_HOPS):
            self.node = name
            self.no_input_count = self.no_match_count = 0
            state = self.script.states[name]
            skip = next(
                (r.goto for r in state.when_filled if all(s in self.slots for s in r.slots)), None
            )
            if skip is not None:
                name = skip
                continue
            self.say_lines(state.say, self.barge_in_allowed(state))
            self.run_actions(state.do)
            if self.phase == "ended":
                return
            if state.listens:
                self.listen_now()
                return
            assert state.next is not None, "validated: a state that does not listen goes next"
            if state.next == RETURN:
                self.go_back()
                return
            name = state.next
        raise DialogRuntimeError(f"more than {_MAX_HOPS} states entered in one step")

    def repeat(self) -> None:
        state = self.state
        self.say_lines(state.reprompt or state.say, self.barge_in_allowed(state))
        self.listen_now()

    def go_back(self) -> None:
        """``$return``: ask the interrupted question again. With nothing interrupted (a detour
        state reached by a normal transition), the call closes as not understood."""
        if not self.return_to:
            self.enter(self.script.defaults.no_match.goto)
            return
        self.node = self.return_to.pop()
        self.no_input_count = self.no_match_count = 0
        self.repeat()

    def listen_now(self) -> None:
        assert self.node is not None
        self.actions.append(self.dialog.listens[self.node])

    def barge_in_allowed(self, state: State) -> bool:
        return self.script.defaults.barge_in if state.barge_in is None else state.barge_in

    # What the borrower does

    def note_turn(self, event: Utterance | DtmfPressed) -> None:
        if isinstance(event, Utterance):
            text, started, confidence = event.text, event.started_at or event.at, event.confidence
        else:
            text, started, confidence = f"#{event.digit}", event.at, None
        self.turns.append(
            Turn(
                speaker="borrower",
                text=text,
                state=self.node,
                started_at=started,
                ended_at=event.at,
                confidence=confidence,
                dtmf=isinstance(event, DtmfPressed),
            )
        )
        self.last_utterance = text

    def heard(self, event: Utterance) -> None:
        self.barge_in()
        self.note_turn(event)
        normalized = self.language.normalize(event.text)
        if not normalized:
            self.no_input()
            return
        if event.confidence < self.script.defaults.min_confidence:
            self.no_match()
            return
        assert self.node is not None
        candidates = self.dialog.candidates[self.node]
        winner = best_intent(
            self.language, normalized, [c.matcher for c in candidates], self.dialog.ignore
        )
        if winner is not None:
            chosen = next(c for c in candidates if c.matcher is winner)
            self.run_handler(chosen.handler, chosen.is_global, normalized)
            return
        self.volunteer(normalized)
        fill = self.state.fill
        if fill is not None:
            found = {
                slot: value
                for slot in fill.slots
                if (value := self.extract(slot, normalized)) is not None
            }
            if found:
                for slot, value in found.items():
                    self.store(slot, value)
                self.run_handler(fill, False, normalized)
                return
        self.no_match()

    def pressed(self, event: DtmfPressed) -> None:
        self.barge_in()
        self.note_turn(event)
        assert self.node is not None
        candidate = self.dialog.dtmf[self.node].get(event.digit)
        if candidate is None:
            self.no_match()
        else:
            self.run_handler(candidate.handler, candidate.is_global, None)

    def no_input(self) -> None:
        self.reprompt("no_input")

    def no_match(self) -> None:
        self.reprompt("no_match")

    def reprompt(self, kind: Literal["no_input", "no_match"]) -> None:
        state = self.state
        default = getattr(self.script.defaults, kind)
        own = getattr(state, kind)
        limit = own.limit if own and own.limit is not None else default.limit
        count = (self.no_input_count if kind == "no_input" else self.no_match_count) + 1
        if count > limit:
            self.enter(own.goto if own and own.goto else default.goto)
            return
        if kind == "no_input":
            self.no_input_count = count
        else:
            self.no_match_count = count
        apology = own.say if own and own.say is not None else default.say
        self.say_lines([*apology, *(state.reprompt or state.say)], self.barge_in_allowed(state))
        self.listen_now()

    def barge_in(self) -> None:
        """Stop the prompts, if every one still playing may be interrupted (a notice may not)."""
        if not self.playing:
            return
        indexes = [self.bot_turn_index(prompt_id) for prompt_id in self.playing]
        if not all(self.turns[i].barge_in for i in indexes):
            return
        self.actions.append(StopSpeaking())
        for i in indexes:
            self.turns[i] = self.turns[i].model_copy(
                update={"ended_at": self.event.at, "interrupted": True}
            )
        self.playing.clear()

    def prompt_finished(self, event: PromptFinished) -> None:
        if event.prompt_id not in self.playing:
            return
        self.playing.remove(event.prompt_id)
        index = self.bot_turn_index(event.prompt_id)
        self.turns[index] = self.turns[index].model_copy(update={"ended_at": event.at})

    # Handlers

    def run_handler(self, handler: Handler, is_global: bool, normalized: str | None) -> None:
        for slot in handler.clear:
            self.slots.pop(slot, None)
        if normalized is not None:
            self.volunteer(normalized)
            for slot in handler.capture:
                value = self.extract(slot, normalized)
                if value is not None:
                    self.store(slot, value)
        for slot, source in handler.set.items():
            self.slots[slot] = self.value(source)
        self.say_lines(handler.say, self.barge_in_allowed(self.state))
        self.run_actions(handler.do)
        if self.phase == "ended":
            return
        target = handler.goto
        assert target is not None, "validated: a handler that does not end the call has a goto"
        if target == REPEAT:
            self.repeat()
        elif target == RETURN:
            self.go_back()
        else:
            if is_global and self.node is not None:
                self.return_to.append(self.node)
            self.enter(target)

    def volunteer(self, normalized: str) -> None:
        """Slots borrowers give before they are asked ("yes, and I'll pay 3500 on Friday")."""
        for intent, slots in self.script.volunteer.items():
            if mentions(self.language, normalized, self.dialog.matchers[intent]):
                for slot in slots:
                    value = self.extract(slot, normalized)
                    if value is not None:
                        self.store(slot, value)

    def store(self, slot: str, value: SlotValue) -> None:
        """Text slots collect everything said into them; other slots keep the latest value."""
        previous = self.slots.get(slot)
        is_text = self.script.slots[slot].type == "text"
        if is_text and isinstance(previous, str) and previous and previous != value:
            value = f"{previous} | {value}"
        self.slots[slot] = value

    def extract(self, slot: str, normalized: str) -> SlotValue | None:
        spec = self.script.slots[slot]
        if spec.type == "text":
            return self.last_utterance.strip() or None
        if self._reading is None:
            self._reading = self.language.read(self.last_utterance, self.local_now)
        return extract_slot(
            spec, self.language, self.last_utterance, normalized, self._reading, self.local_now
        )

    @property
    def local_now(self) -> datetime:
        return self.event.at.astimezone(self.context.zone)

    # Actions

    def run_actions(self, actions: Sequence[ScriptAction]) -> None:
        for action in actions:
            if self.phase == "ended":
                return
            if isinstance(action, RecordAction):
                self.record(self.outcome_for(action))
            elif isinstance(action, ScheduleCallBackAction):
                spec = action.schedule_callback
                if spec.at is not None:
                    moment = self.value(spec.at)
                    assert isinstance(moment, datetime)
                else:
                    assert spec.after_minutes is not None
                    moment = self.event.at + timedelta(minutes=spec.after_minutes)
                at = moment.astimezone(UTC).replace(microsecond=0)
                self.record(CallBackRequest(at=at))
                self.actions.append(ScheduleCallBack(at=at))
            elif isinstance(action, OptOutAction):
                self.record(OptOutRequest())
                self.actions.append(OptOut(reason=action.opt_out))
            elif isinstance(action, TransferAction):
                number = self.dialog.render_static(self.dialog.template(action.transfer))
                self.actions.append(Transfer(number=number))
                self.end("transferred")
            elif isinstance(action, HangupAction):
                self.hang_up(action.hangup)
            else:
                assert_never(action)

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.actions.append(RecordOutcome(outcome=outcome))
        if isinstance(outcome, Confirmation) and "identity" in outcome.fields:
            self.identity_confirmed = True

    def outcome_for(self, action: RecordAction) -> Outcome:
        spec = action.record
        if isinstance(spec, RecordConfirmation):
            return Confirmation(fields=tuple(spec.fields))
        if isinstance(spec, RecordPromise):
            amount, day = self.value(spec.amount), self.value(spec.date)
            if not isinstance(amount, Decimal) or not isinstance(day, date):
                raise DialogRuntimeError("a promise needs an amount and a date")
            currency = spec.currency or self.context.currency
            return PromiseToPay(amount=amount.quantize(CENT), currency=currency, date=day)
        if isinstance(spec, RecordComplaint):
            category = spec.category
            if category in self.script.slots:
                category = str(self.slots.get(category) or self.script.slots[category].default)
            return Complaint(category=category, text=self.text_of(spec.text))
        if isinstance(spec, RecordWrongParty):
            return WrongParty()
        if isinstance(spec, RecordDispute):
            return Dispute(text=self.text_of(spec.text))
        if isinstance(spec, RecordRiskFlag):
            return RiskFlag(flag=spec.flag, text=self.text_of(spec.text))
        assert_never(spec)

    def text_of(self, name: str) -> str:
        if name != UTTERANCE and name in self.slots:
            return str(self.slots[name])
        return self.last_utterance

    def hang_up(self, reason: str) -> None:
        self.actions.append(Hangup(reason=reason))
        self.end(reason)

    def end(self, reason: str) -> None:
        self.phase = "ended"
        self.end_reason = reason

    # Speaking

    def say_lines(self, lines: Sequence[str], barge_in: bool) -> None:
        for line in lines:
            text = self.dialog.template(line).render(self.spoken)
            prompt_id = self.next_prompt_id
            self.next_prompt_id += 1
            self.actions.append(Say(prompt_id=prompt_id, text=text, barge_in=barge_in))
            self.playing.append(prompt_id)
            self.turns.append(
                Turn(
                    speaker="bot",
                    text=text,
                    state=self.node,
                    started_at=self.event.at,
                    prompt_id=prompt_id,
                    barge_in=barge_in,
                )
            )

    def bot_turn_index(self, prompt_id: int) -> int:
        return next(i for i, t in enumerate(self.turns) if t.prompt_id == prompt_id)

    def spoken(self, name: str) -> str:
        """A template placeholder's value, as words in the script's language."""
        script, language = self.script, self.language
        if name == RECORDING_NOTICE:
            return self.dialog.render_static(self.dialog.template(script.recording_notice))
        if name in script.constants:
            return script.constants[name]
        today = self.local_now.date()
        if name in script.fields:
            spec = script.fields[name]
            if spec.private and not self.identity_confirmed:
                raise DialogRuntimeError(f"{{{name}}} is not said before identity is confirmed")
            if name not in self.context.fields:
                return ""
            field_value = self.context.fields[name]
            if spec.type == "amount" and isinstance(field_value, Decimal):
                return language.say_amount(field_value, self.context.currency)
            if spec.type == "date" and isinstance(field_value, date):
                return language.say_date(field_value, today)
            if spec.type == "number" and isinstance(field_value, int):
                return language.say_number(field_value)
            if spec.type == "digits":
                return language.say_digits(str(field_value))
            return str(field_value)
        if name not in self.slots:
            raise DialogRuntimeError(f"slot {name!r} has no value yet")
        value = self.slots[name]
        if isinstance(value, Decimal):
            return language.say_amount(value, self.context.currency)
        if isinstance(value, datetime):
            return language.say_datetime(value.astimezone(self.context.zone), today)
        if isinstance(value, date):
            return language.say_date(value, today)
        if isinstance(value, time):
            return language.say_time(value)
        return value

    def value(self, name: str) -> SlotValue:
        """A field's or slot's raw value (for ``set`` and outcomes)."""
        if name in self.slots:
            return self.slots[name]
        if name in self.context.fields:
            field_value = self.context.fields[name]
            return str(field_value) if isinstance(field_value, int) else field_value
        raise DialogRuntimeError(f"{name!r} has no value")
