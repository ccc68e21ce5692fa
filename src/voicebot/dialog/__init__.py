"""The dialog core, pure: call scripts, their loader and validator, the engine, understanding.

dialog = load_dialog("dialogs/car_loan_followup.zh-CN.yaml")
context = context_for(dialog.script, contact_json)
state, actions = step(new_call(dialog, context), CallStarted(at=now))
state, actions = step(state, Utterance(at=later, text="是我", confidence=0.9))
"""

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
from voicebot.dialog.context import (
    CallContext,
    ContactDataError,
    FieldProblem,
    context_for,
    field_problems,
)
from voicebot.dialog.engine import CallState, DialogRuntimeError, new_call, replay, step
from voicebot.dialog.events import (
    EVENT,
    CallStarted,
    DtmfPressed,
    Event,
    HungUp,
    MaxDurationReached,
    NoInput,
    PromptFinished,
    Utterance,
)
from voicebot.dialog.loader import (
    DialogError,
    DialogInvalid,
    check_dialog,
    check_dialog_text,
    load_dialog,
    load_dialog_text,
)
from voicebot.dialog.outcomes import (
    OUTCOME,
    CallBackRequest,
    Complaint,
    Confirmation,
    Dispute,
    OptOutRequest,
    Outcome,
    PromiseToPay,
    RiskFlag,
    WrongParty,
    outcome_from,
    outcome_json,
)
from voicebot.dialog.transcript import Turn

__all__ = [
    "EVENT",
    "OUTCOME",
    "Action",
    "CallBackRequest",
    "CallContext",
    "CallStarted",
    "CallState",
    "Complaint",
    "Confirmation",
    "ContactDataError",
    "Dialog",
    "DialogError",
    "DialogInvalid",
    "DialogRuntimeError",
    "Dispute",
    "DtmfPressed",
    "Event",
    "FieldProblem",
    "Hangup",
    "HungUp",
    "Listen",
    "MaxDurationReached",
    "NoInput",
    "OptOut",
    "OptOutRequest",
    "Outcome",
    "PromiseToPay",
    "PromptFinished",
    "RecordOutcome",
    "RiskFlag",
    "Say",
    "ScheduleCallBack",
    "StopSpeaking",
    "Transfer",
    "Turn",
    "Utterance",
    "WrongParty",
    "check_dialog",
    "check_dialog_text",
    "context_for",
    "field_problems",
    "load_dialog",
    "load_dialog_text",
    "new_call",
    "outcome_from",
    "outcome_json",
    "replay",
    "step",
]
