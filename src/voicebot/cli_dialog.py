"""``voicebot dialog check FILE…`` and ``voicebot chat DIALOG``: tools for script authors.

``cli.py`` registers them: ``app.add_typer(dialog_app, name="dialog")`` and
``app.command("chat")(chat)``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from voicebot.dialog import (
    Action,
    CallStarted,
    CallState,
    ContactDataError,
    DialogInvalid,
    DtmfPressed,
    Event,
    Hangup,
    NoInput,
    OptOut,
    PromptFinished,
    RecordOutcome,
    Say,
    ScheduleCallBack,
    Transfer,
    Utterance,
    check_dialog,
    context_for,
    load_dialog,
    new_call,
    outcome_json,
    step,
)

dialog_app = typer.Typer(help="Dialog scripts (dialogs/*.yaml).", no_args_is_help=True)


@dialog_app.command("check")
def check(
    files: Annotated[list[Path], typer.Argument(help="Dialog YAML files to check.")],
) -> None:
    """Check dialog files: schema, references, the state graph, templates. Exit 1 on problems."""
    problems = 0
    for file in files:
        for error in check_dialog(file):
            typer.echo(str(error))
            problems += 1
    if problems:
        raise typer.Exit(1)
    noun = "file" if len(files) == 1 else "files"
    typer.echo(f"OK: {len(files)} dialog {noun}, no problems")


def chat(
    dialog: Annotated[Path, typer.Argument(help="The dialog YAML file to talk to.")],
    contact: Annotated[
        str,
        typer.Option(
            help='The contact as JSON (\'{"name": "张三", "amount_due": 3500, …}\'), '
            "or @FILE with that JSON."
        ),
    ],
    now: Annotated[
        str | None,
        typer.Option(
            help="Fix the clock (ISO datetime; without an offset it is the borrower's "
            "local time) so relative dates are reproducible."
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="End with one JSON line: end_state and outcomes."),
    ] = False,
) -> None:
    """Talk to a dialog in text. Each input line is one thing the borrower says; '#1' presses
    DTMF 1; an empty line is silence (no input). Ends at end of input or when the dialog ends."""
    try:
        loaded = load_dialog(dialog)
    except DialogInvalid as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    try:
        context = context_for(loaded.script, _contact_json(contact))
    except (ContactDataError, ValueError, OSError) as exc:
        typer.echo(f"bad --contact: {exc}", err=True)
        raise typer.Exit(2) from None
    fixed = _parse_now(now, context.zone) if now else None

    def clock() -> datetime:
        return fixed or datetime.now(UTC)

    interactive = sys.stdin.isatty()
    state = _run(new_call(loaded, context), CallStarted(at=clock()))
    while not state.ended:
        if interactive:
            typer.echo("you> ", nl=False)
        line = sys.stdin.readline()
        if not line:
            break
        state = _run(state, _event_for(line.strip(), clock()))
    if json_output:
        summary = {
            "end_state": state.node,
            "outcomes": [outcome_json(outcome) for outcome in state.outcomes],
        }
        typer.echo(json.dumps(summary, ensure_ascii=False))


def _contact_json(raw: str) -> dict[str, Any]:
    text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("the contact must be a JSON object")
    return value


def _parse_now(raw: str, zone: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        typer.echo(f"bad --now: {raw!r} is not an ISO datetime", err=True)
        raise typer.Exit(2) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _event_for(line: str, at: datetime) -> Event:
    if len(line) == 2 and line[0] == "#" and line[1] in "0123456789*#":
        return DtmfPressed(at=at, digit=line[1])
    if not line:
        return NoInput(at=at)
    return Utterance(at=at, text=line, confidence=1.0)


def _run(state: CallState, event: Event) -> CallState:
    state, actions = step(state, event)
    for action in actions:
        _show(action)
        if isinstance(action, Say):
            # A text console "plays" a prompt the moment it prints it.
            state, _ = step(state, PromptFinished(at=event.at, prompt_id=action.prompt_id))
    return state


def _show(action: Action) -> None:
    if isinstance(action, Say):
        typer.echo(f"bot: {action.text}")
    elif isinstance(action, RecordOutcome):
        typer.echo(f"  [outcome] {json.dumps(outcome_json(action.outcome), ensure_ascii=False)}")
    elif isinstance(action, ScheduleCallBack):
        typer.echo(f"  [call-back] {action.at.isoformat()}")
    elif isinstance(action, OptOut):
        typer.echo(f"  [opt-out] {action.reason}")
    elif isinstance(action, Transfer):
        typer.echo(f"  [transfer] {action.number}")
    elif isinstance(action, Hangup):
        typer.echo(f"  [hangup] {action.reason}")


def main() -> None:
    """``python -m voicebot.cli_dialog``: these two commands alone, without settings or database."""
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                             no_args_is_help=True)  # fmt: skip
    standalone.add_typer(dialog_app, name="dialog")
    standalone.command("chat")(chat)
    standalone()


if __name__ == "__main__":
    main()
