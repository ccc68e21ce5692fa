"""``dialog check`` and ``chat`` as processes: exit codes, output lines, the final JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.dialog import check_dialog

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DIALOGS = ROOT / "dialogs"
FIXTURES = ROOT / "tests" / "unit" / "dialog_fixtures"
COMMAND = [sys.executable, "-m", "voicebot.cli_dialog"]
ZH_CONTACT = {"name": "张三", "amount_due": "3500", "due_date": "2024-12-15",
              "time_zone": "Asia/Shanghai"}  # fmt: skip


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_check_passes_the_shipped_dialogs() -> None:
    result = run("dialog", "check", *sorted(str(p) for p in DIALOGS.glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "OK: 3 dialog files, no problems"


def test_check_prints_file_line_message_and_fails() -> None:
    files = [str(FIXTURES / "good.yaml"), str(FIXTURES / "bad_graph.yaml"),
             str(FIXTURES / "bad_yaml.yaml")]  # fmt: skip
    result = run("dialog", "check", *files)
    assert result.returncode == 1
    expected = [str(error) for file in files for error in check_dialog(file)]
    assert result.stdout.splitlines() == expected
    assert f"{FIXTURES / 'bad_yaml.yaml'}:6: YAML: " in result.stdout


def test_chat_to_a_promise_with_json_summary() -> None:
    result = run(
        "chat", str(DIALOGS / "car_loan_followup.zh-CN.yaml"),
        "--contact", json.dumps(ZH_CONTACT, ensure_ascii=False),
        "--now", "2024-12-11T10:00", "--json",
        stdin="是我\n#1\n我下周五还三千五\n对\n这行不会被读到\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("bot: 您好，我是安信客服中心")
    assert "bot: 提醒您，您本期车贷应还金额为三千五百元，还款日是十二月十五日。" in lines
    assert json.loads(lines[-1]) == {
        "end_state": "promise_thanks",
        "outcomes": [
            {"type": "confirmation", "fields": ["identity"]},
            {"type": "confirmation", "fields": ["phone"]},
            {"type": "promise", "amount": "3500.00", "currency": "CNY", "date": "2024-12-20"},
        ],
    }


def test_chat_ends_at_end_of_input(tmp_path: Path) -> None:
    contact = tmp_path / "contact.json"
    contact.write_text(json.dumps({"name": "John Smith", "amount_due": 3500,
                                   "due_date": "2024-12-15"}))  # fmt: skip
    result = run(
        "chat", str(DIALOGS / "car_loan_followup.en-US.yaml"), "--contact", f"@{contact}",
        "--now", "2024-12-11T10:00:00-06:00", "--json",
        stdin="yes\n\ncall me back tomorrow at 3 pm\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["end_state"] == "callback_confirmed"
    assert summary["outcomes"][-1] == {"type": "callback_request", "at": "2024-12-12T20:00:00Z"}
    assert "  [call-back] 2024-12-12T20:00:00+00:00" in result.stdout
    assert "bot: Sorry, I didn't hear anything." in result.stdout  # the empty line was silence

    unfinished = run(
        "chat", str(DIALOGS / "car_loan_followup.en-US.yaml"), "--contact", f"@{contact}",
        "--json", stdin="yes\n",
    )  # fmt: skip
    assert json.loads(unfinished.stdout.splitlines()[-1]) == {
        "end_state": "confirm_phone",
        "outcomes": [{"type": "confirmation", "fields": ["identity"]}],
    }


def test_chat_refuses_a_bad_dialog_and_a_bad_contact() -> None:
    bad = run("chat", str(FIXTURES / "bad_templates.yaml"), "--contact", "{}")
    assert bad.returncode == 1
    expected = [str(error) for error in check_dialog(FIXTURES / "bad_templates.yaml")]
    assert bad.stderr.splitlines() == expected
    no_contact = run("chat", str(DIALOGS / "car_loan_followup.zh-CN.yaml"), "--contact", "[1]")
    assert no_contact.returncode == 2
    assert "bad --contact" in no_contact.stderr
