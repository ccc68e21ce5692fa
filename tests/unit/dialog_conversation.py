"""A text conversation with a dialog, for tests: each borrower turn is one engine event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from voicebot.dialog import (
    Action,
    CallStarted,
    CallState,
    Dialog,
    DtmfPressed,
    Event,
    Hangup,
    HungUp,
    Listen,
    NoInput,
    PromptFinished,
    Say,
    Utterance,
    context_for,
    load_dialog,
    new_call,
    outcome_json,
    step,
)

DIALOGS = Path(__file__).resolve().parents[2] / "dialogs"
# Wednesday 11 December 2024, 10:00 in Shanghai / Chicago / Seoul (relative dates hang on it).
LOCAL_NOW = {"zh-CN": "2024-12-11T02:00:00", "en-US": "2024-12-11T16:00:00",
             "ko-KR": "2024-12-11T01:00:00"}  # fmt: skip
CONTACTS: dict[str, dict[str, Any]] = {
    "zh-CN": {"name": "张三", "amount_due": "3500", "due_date": "2024-12-15",
              "time_zone": "Asia/Shanghai"},
    "en-US": {"name": "John Smith", "amount_due": "3500", "due_date": "2024-12-15",
              "time_zone": "America/Chicago"},
    "ko-KR": {"name": "김민수", "amount_due": "300000", "due_date": "2024-12-15",
              "time_zone": "Asia/Seoul"},
}  # fmt: skip
_DIALOG_CACHE: dict[str, Dialog] = {}


def shipped(language: str) -> Dialog:
    if language not in _DIALOG_CACHE:
        _DIALOG_CACHE[language] = load_dialog(DIALOGS / f"car_loan_followup.{language}.yaml")
    return _DIALOG_CACHE[language]


class Conversation:
    """Plays every prompt out at once (as the text console does) unless ``autoplay`` is off."""

    def __init__(
        self,
        dialog: Dialog,
        contact: dict[str, Any],
        start: datetime,
        *,
        autoplay: bool = True,
        answered_by: Literal["human", "machine"] = "human",
    ) -> None:
        self.state: CallState = new_call(dialog, context_for(dialog.script, contact))
        self.clock = start
        self.autoplay = autoplay
        self.actions: list[Action] = []
        self.last: list[Action] = []
        self.send(CallStarted(at=self.clock, answered_by=answered_by))

    @classmethod
    def shipped(cls, language: str, **options: Any) -> Conversation:
        start = datetime.fromisoformat(LOCAL_NOW[language]).replace(tzinfo=UTC)
        return cls(shipped(language), CONTACTS[language], start, **options)

    def send(self, event: Event) -> list[Action]:
        self.state, produced = step(self.state, event)
        actions = list(produced)
        if self.autoplay:
            for action in produced:
                if isinstance(action, Say):
                    self.state, more = step(
                        self.state, PromptFinished(at=event.at, prompt_id=action.prompt_id)
                    )
                    assert more == ()
        self.actions += actions
        self.last = actions
        return actions

    def tick(self, seconds: float = 4.0) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def say(self, text: str, confidence: float = 0.95) -> list[Action]:
        return self.send(Utterance(at=self.tick(), text=text, confidence=confidence))

    def talk(self, *lines: str) -> Conversation:
        for line in lines:
            assert not self.state.ended, f"the call ended before {line!r}"
            self.say(line)
        return self

    def partial(self, text: str) -> list[Action]:
        return self.send(Utterance(at=self.tick(0.3), text=text, partial=True))

    def press(self, digit: str) -> list[Action]:
        return self.send(DtmfPressed(at=self.tick(), digit=digit))

    def silence(self) -> list[Action]:
        return self.send(NoInput(at=self.tick(6)))

    def hang_up(self) -> list[Action]:
        return self.send(HungUp(at=self.tick()))

    @property
    def node(self) -> str | None:
        return self.state.node

    @property
    def outcomes(self) -> list[dict[str, Any]]:
        return [outcome_json(outcome) for outcome in self.state.outcomes]

    @property
    def outcome_types(self) -> list[str]:
        return [outcome["type"] for outcome in self.outcomes]

    @property
    def bot_lines(self) -> list[str]:
        return [action.text for action in self.actions if isinstance(action, Say)]

    @property
    def last_lines(self) -> list[str]:
        return [action.text for action in self.last if isinstance(action, Say)]

    @property
    def listening(self) -> str | None:
        """The state of the latest Listen action (None once the call ended)."""
        if self.state.ended:
            return None
        listens = [action for action in self.actions if isinstance(action, Listen)]
        return listens[-1].state if listens else None

    @property
    def hangup(self) -> str | None:
        hangups = [action.reason for action in self.actions if isinstance(action, Hangup)]
        return hangups[-1] if hangups else None
