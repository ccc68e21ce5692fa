"""The call-script language: what a ``dialogs/*.yaml`` file may say, as pydantic models.

A script is a set of named states. A state may say lines (templates with ``{field}`` placeholders),
run actions, skip ahead when slots are already filled, and listen: each intent it listens for has
a handler that may capture slots, run actions, say something and go to another state. Global
intents (opt-out, complaint, …) are heard in every listening state. ``loader`` turns YAML into
these models with line numbers for every error; ``validation`` checks what a schema cannot.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

from voicebot.domain.types import OutcomeType

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
Target = Annotated[str, StringConstraints(pattern=r"^(\$repeat|\$return|[a-z][a-z0-9_]*)$")]
Digit = Annotated[str, StringConstraints(pattern=r"^[0-9*#]$")]
REPEAT = "$repeat"  # say this state's prompt again and keep listening
RETURN = "$return"  # go back to the state a global intent interrupted
UTTERANCE = "utterance"  # in outcome fields: what the borrower just said, verbatim
RECORDING_NOTICE = "recording_notice"  # in templates: the script's recording notice

FieldKind = Literal["text", "amount", "date", "number", "digits"]
SlotKind = Literal["amount", "date", "time", "datetime", "text", "choice"]
Language = Literal["zh-CN", "en-US", "ko-KR"]
RiskFlagKind = Literal["income_drop", "job_loss", "vehicle_sold", "hardship", "other"]


def _as_lines(value: object) -> object:
    return [value] if isinstance(value, str) else value


Lines = Annotated[list[str], BeforeValidator(_as_lines)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def _type_shorthand(value: object) -> object:
    """``name: text`` is short for ``name: {type: text}``."""
    return {"type": value} if isinstance(value, str) else value


class FieldSpec(_Strict):
    """A contact or loan value the templates may use."""

    type: FieldKind
    # Loan details: a template may speak a private field only once the borrower's identity has
    # been confirmed (checked when the script is loaded).
    private: bool = False
    required: bool = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return _type_shorthand(value)


class SlotSpec(_Strict):
    """Something the borrower tells the bot during the call."""

    type: SlotKind
    # choice slots: each choice's words; the first choice whose word is heard wins.
    choices: dict[Name, list[str]] = Field(default_factory=dict)
    default: Name | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return _type_shorthand(value)

    @model_validator(mode="after")
    def _choices_only_for_choice(self) -> SlotSpec:
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice slot needs choices")
        if self.type != "choice" and (self.choices or self.default):
            raise ValueError("only choice slots have choices and a default")
        if self.default is not None and self.default in self.choices:
            raise ValueError("default must be a category of its own, not one of the choices")
        return self


class IntentSpec(_Strict):
    """How a borrower expresses one meaning, in the script's language.

    ``phrases`` are whole answers and ``keywords`` words that signal the intent anywhere; both are
    matched inside longer utterances and both go into the recogniser's grammar. ``patterns`` are
    regular expressions over the normalised text (lower case; no spaces in Chinese and Korean).
    """

    phrases: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    dtmf: Digit | None = None
    # Breaks ties between intents matched by equally long text.
    priority: int = 0

    @model_validator(mode="after")
    def _says_something(self) -> IntentSpec:
        if not (self.phrases or self.keywords or self.patterns or self.dtmf):
            raise ValueError("an intent needs phrases, keywords, patterns or a dtmf digit")
        return self


# Outcomes a script records. Values naming a field or slot are looked up; ``utterance`` is what the
# borrower just said. Opt-outs and call-back requests have their own actions.


class RecordConfirmation(_Strict):
    type: Literal[OutcomeType.CONFIRMATION]
    fields: Annotated[list[Name], Field(min_length=1)]


class RecordPromise(_Strict):
    type: Literal[OutcomeType.PROMISE]
    amount: Name
    date: Name
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None


class RecordComplaint(_Strict):
    type: Literal[OutcomeType.COMPLAINT]
    category: Name  # a choice slot, or a literal category
    text: Name = UTTERANCE


class RecordWrongParty(_Strict):
    type: Literal[OutcomeType.WRONG_PARTY]


class RecordDispute(_Strict):
    type: Literal[OutcomeType.DISPUTE]
    text: Name = UTTERANCE


class RecordRiskFlag(_Strict):
    type: Literal[OutcomeType.RISK_FLAG]
    flag: RiskFlagKind
    text: Name = UTTERANCE


RecordSpec = Annotated[
    RecordConfirmation
    | RecordPromise
    | RecordComplaint
    | RecordWrongParty
    | RecordDispute
    | RecordRiskFlag,
    Field(discriminator="type"),
]


class RecordAction(_Strict):
    record: RecordSpec


class CallBackSpec(_Strict):
    """When to call back: a datetime slot, or minutes from now when the borrower gave no time."""

    at: Name | None = None
    after_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 30)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> CallBackSpec:
        if (self.at is None) == (self.after_minutes is None):
            raise ValueError("schedule_callback takes exactly one of 'at' or 'after_minutes'")
        return self


class ScheduleCallBackAction(_Strict):
    """Records a ``callback_request`` outcome and asks for a call-back at that time."""

    schedule_callback: CallBackSpec


class OptOutAction(_Strict):
    """Records an ``opt_out`` outcome and puts the number on the do-not-call list."""

    opt_out: str = "borrower_request"


class TransferAction(_Strict):
    """Hands the call to a person at this number (E.164, may name a constant); ends the dialog."""

    transfer: str


class HangupAction(_Strict):
    hangup: str = "completed"


def _action_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return next(iter(value)) if len(value) == 1 else None
    tags: dict[type[BaseModel], str] = {
        RecordAction: "record",
        ScheduleCallBackAction: "schedule_callback",
        OptOutAction: "opt_out",
        TransferAction: "transfer",
        HangupAction: "hangup",
    }
    return tags.get(type(value))


def _bare_action(value: object) -> object:
    """``- hangup`` and ``- opt_out`` need no argument."""
    if value == "hangup":
        return {"hangup": "completed"}
    if value == "opt_out":
        return {"opt_out": "borrower_request"}
    return value


Action = Annotated[
    Annotated[RecordAction, Tag("record")]
    | Annotated[ScheduleCallBackAction, Tag("schedule_callback")]
    | Annotated[OptOutAction, Tag("opt_out")]
    | Annotated[TransferAction, Tag("transfer")]
    | Annotated[HangupAction, Tag("hangup")],
    Discriminator(
        _action_tag,
        custom_error_type="invalid_action",
        custom_error_message=(
            "an action is one of record, schedule_callback, opt_out, transfer or hangup"
        ),
    ),
    BeforeValidator(_bare_action),
]

ENDING_ACTIONS = (TransferAction, HangupAction)


class Handler(_Strict):
    """What happens when an intent is heard. Runs in order: clear, capture, set, say, do, goto."""

    clear: list[Name] = Field(default_factory=list)
    capture: list[Name] = Field(default_factory=list)
    # slot ← the field or slot of that name
    set: dict[Name, Name] = Field(default_factory=dict)
    say: Lines = Field(default_factory=list)
    do: list[Action] = Field(default_factory=list)
    goto: Target | None = None
    # Pressing this digit selects the handler (overrides the intent's own digit).
    dtmf: Digit | None = None

    @property
    def ends_call(self) -> bool:
        return any(isinstance(action, ENDING_ACTIONS) for action in self.do)


class FillHandler(Handler):
    """Runs when no intent matched but the utterance filled one of ``slots`` (a bare date, or any
    words at all for a text slot)."""

    slots: Annotated[list[Name], Field(min_length=1)]


class WhenFilled(_Strict):
    """On entering a state: if every slot here already has a value, go straight on."""

    slots: Annotated[list[Name], Field(min_length=1)]
    goto: Name


class Reprompt(_Strict):
    """What to do when nothing is heard (no_input) or nothing is understood (no_match)."""

    say: Lines | None = None
    limit: Annotated[int, Field(ge=0, le=10)] | None = None
    goto: Name | None = None


class DefaultReprompt(_Strict):
    say: Lines = Field(default_factory=list)
    limit: Annotated[int, Field(ge=0, le=10)] = 2
    goto: Name


class Defaults(_Strict):
    no_input_seconds: Annotated[float, Field(gt=0, le=60)] = 6.0
    no_input: DefaultReprompt
    no_match: DefaultReprompt
    # Utterances recognised with less confidence than this count as not understood.
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.0
    barge_in: bool = True


class State(_Strict):
    say: Lines = Field(default_factory=list)
    # What a reprompt repeats after its apology (default: ``say``).
    reprompt: Lines | None = None
    barge_in: bool | None = None
    do: list[Action] = Field(default_factory=list)
    when_filled: list[WhenFilled] = Field(default_factory=list)
    listen: dict[Name, Handler] | None = None
    fill: FillHandler | None = None
    # The state that follows one that does not listen; ``$return`` goes back to the state a
    # global intent interrupted (after a complaint has been taken, say).
    next: Target | None = None
    globals: bool = True
    exclude_globals: list[Name] = Field(default_factory=list)
    no_input: Reprompt | None = None
    no_match: Reprompt | None = None
    no_input_seconds: Annotated[float, Field(gt=0, le=60)] | None = None

    @property
    def listens(self) -> bool:
        return self.listen is not None or self.fill is not None

    @property
    def ends_call(self) -> bool:
        return any(isinstance(action, ENDING_ACTIONS) for action in self.do)


class DialogScript(_Strict):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=120)]
    version: Annotated[int, Field(ge=1)]
    language: Language
    voice: Annotated[str, StringConstraints(min_length=1)]
    max_call_seconds: Annotated[int, Field(ge=10, le=3600)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    start: Name
    # The state entered when max_call_seconds have passed (it should close politely and hang up).
    on_max_duration: Name | None = None
    recording_notice: Annotated[str, StringConstraints(min_length=1)]
    # Left on an answering machine: must not mention the loan (no private fields).
    voicemail: Annotated[str, StringConstraints(min_length=1)]
    constants: dict[Name, str] = Field(default_factory=dict)
    fields: dict[Name, FieldSpec] = Field(default_factory=dict)
    slots: dict[Name, SlotSpec] = Field(default_factory=dict)
    defaults: Defaults
    intents: dict[Name, IntentSpec]
    globals: dict[Name, Handler] = Field(default_factory=dict)
    # intent → slots captured whenever the intent is heard, whatever the state is asking about.
    volunteer: dict[Name, list[Name]] = Field(default_factory=dict)
    # Phrases that mean nothing here (不好意思, "no problem" where "no" is an intent): they keep
    # the words inside them from counting as an intent.
    ignore: list[str] = Field(default_factory=list)
    states: Annotated[dict[Name, State], Field(min_length=1)]
