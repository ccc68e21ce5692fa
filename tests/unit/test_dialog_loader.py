"""Loading and checking dialog files: every problem with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.dialog import (
    DialogError,
    DialogInvalid,
    check_dialog,
    check_dialog_text,
    load_dialog,
    load_dialog_text,
)

FIXTURES = Path(__file__).parent / "dialog_fixtures"
DIALOGS = Path(__file__).resolve().parents[2] / "dialogs"


def problems(name: str) -> list[tuple[int, str]]:
    errors = check_dialog(FIXTURES / name)
    assert all(error.file == str(FIXTURES / name) for error in errors)
    return [(error.line, error.message) for error in errors]


@pytest.mark.parametrize("path", sorted(DIALOGS.glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_dialogs_have_no_problems(path: Path) -> None:
    assert check_dialog(path) == []
    dialog = load_dialog(path)
    assert dialog.id == "car_loan_followup"
    assert dialog.script.language in path.name


def test_the_good_fixture_loads() -> None:
    assert problems("good.yaml") == []


def test_broken_yaml_is_reported_where_it_breaks() -> None:
    [(line, message)] = problems("bad_yaml.yaml")
    assert line == 6
    assert message.startswith("YAML: ")


def test_aliases_and_absurd_nesting_are_refused_where_they_start() -> None:
    # A "billion laughs" file: nine aliases of nine aliases of … took minutes to check; a
    # structure 600 levels deep overflowed the stack with a traceback.
    laughs = "".join(
        f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9) if n else 'ha'}]\n" for n in range(9)
    )
    deep = "id: x\nstates:\n  " + "[" * 600 + "]" * 600 + "\n"
    assert [(e.line, e.message) for e in check_dialog_text(laughs, "laughs.yaml")] == [
        (2, "YAML: aliases (*name) are not allowed in a dialog file: write the value out")
    ]
    assert [(e.line, e.message) for e in check_dialog_text(deep, "deep.yaml")] == [
        (3, "YAML: nested more than 64 levels deep")
    ]


def test_schema_errors_carry_the_line_of_the_offending_key() -> None:
    assert problems("bad_schema.yaml") == [
        (3, "language: Input should be 'zh-CN', 'en-US' or 'ko-KR'"),
        (5, "max_call_seconds: Input should be a valid integer, unable to parse string as an "
            "integer"),
        (12, "defaults.no_match: missing key 'goto'"),
        (15, "intents.shrug: an intent needs phrases, keywords, patterns or a dtmf digit"),
        (19, "states.hello: unknown key 'sayy'"),
        (24, "states.bye.do.0: an action is one of record, schedule_callback, opt_out, transfer "
             "or hangup"),
    ]  # fmt: skip


def test_dangling_names_are_reported() -> None:
    assert problems("bad_references.yaml") == [
        (14, "no state named 'nowhere'"),
        (16, "bad pattern: missing ), unterminated subpattern at position 0"),
        (18, "no intent named 'shout'"),
        (23, "no slot named 'whenever'"),
        (23, "no state named 'missing_state'"),
        (24, "no intent named 'maybe'"),
        (27, "'when' is not an amount field or slot"),
    ]


def test_the_state_graph_is_checked() -> None:
    assert problems("bad_graph.yaml") == [
        (17, "state 'hello': DTMF 1 selects both 'yes' and 'no'"),
        (22, "state 'ping' never leads to the end of the call"),
        (22, "loop without listening: ping → pong → ping"),
        (25, "state 'pong' never leads to the end of the call"),
        (28, "state 'dead_end' has no way out: it neither listens, goes next, nor ends the call"),
        (30, "state 'orphan' is unreachable"),
    ]


def test_templates_are_checked_for_names_and_for_disclosure() -> None:
    assert problems("bad_templates.yaml") == [
        (9, "the voicemail must not mention {amount_due}"),
        (26, "the start state must say {recording_notice}"),
        (26, "template names unknown field {nam}"),
        (26, "state 'hello' may speak before the borrower's identity is confirmed, so it must not "
             "mention {amount_due}"),
        (30, "unmatched '{' in template 'Transferring { you.' (write {{ for a brace)"),
        (31, "transfer number '555-0100' is not E.164 (+…)"),
    ]  # fmt: skip


def test_a_duplicate_key_is_an_error_rather_than_a_silent_overwrite() -> None:
    assert problems("duplicate_keys.yaml") == [(23, "duplicate key 'hello' (first on line 16)")]


BAD = sorted(p.name for p in FIXTURES.glob("*.yaml") if p.name != "good.yaml")


@pytest.mark.parametrize("name", BAD)
def test_loading_a_bad_file_raises_with_the_same_messages(name: str) -> None:
    with pytest.raises(DialogInvalid) as raised:
        load_dialog(FIXTURES / name)
    assert list(raised.value.errors) == check_dialog(FIXTURES / name)
    assert str(raised.value) == "\n".join(str(error) for error in check_dialog(FIXTURES / name))


def test_an_error_prints_as_file_line_message() -> None:
    assert str(DialogError("d.yaml", 7, "boom")) == "d.yaml:7: boom"


def test_a_missing_file_and_an_empty_one_are_errors() -> None:
    [missing] = check_dialog(FIXTURES / "no_such_file.yaml")
    assert "cannot read" in missing.message
    empty = DialogError("empty.yaml", 1, "the file is empty")
    assert check_dialog_text("", "empty.yaml") == [empty]
    [listed] = check_dialog_text("- a list\n", "list.yaml")
    assert listed.message.startswith("a dialog is a mapping")


def test_yes_and_no_stay_strings() -> None:
    text = (FIXTURES / "good.yaml").read_text().replace('"yes"', "yes").replace('"no"', "no")
    dialog = load_dialog_text(text)
    assert set(dialog.script.intents) == {"yes", "no"}
    assert dialog.script.intents["yes"].phrases == ["yes"]


def test_next_may_return_but_not_repeat() -> None:
    text = (FIXTURES / "good.yaml").read_text().replace("    next: bye\n", "    next: $return\n")
    dialog = load_dialog_text(text)
    assert dialog.script.states["remind"].next == "$return"
    bad = (FIXTURES / "good.yaml").read_text().replace("    next: bye\n", "    next: $repeat\n")
    messages = [error.message for error in check_dialog_text(bad)]
    assert "next cannot be $repeat: only a handler repeats" in messages
