"""``voicebot demo``: the whole embedded default, end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

VOICEBOT = Path(sys.executable).with_name("voicebot")
KNOWN_DISPOSITIONS = {"answered", "hung_up", "no_answer", "busy", "failed", "voicemail"}


def test_demo_calls_every_contact_and_reports_consistent_counts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    started = time.monotonic()
    result = subprocess.run(
        [str(VOICEBOT), "demo", "--contacts", "8", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 45, elapsed
    summary = json.loads(result.stdout.strip().splitlines()[-1])

    assert summary["contacts"] == 8
    assert summary["contacts_called"] == 8
    assert summary["finished"] is True
    dispositions: dict[str, int] = summary["dispositions"]
    assert sum(dispositions.values()) == summary["calls"]
    assert set(dispositions) <= KNOWN_DISPOSITIONS
    # Personas of the first 8 contacts: 3 answer, 2 never answer, one each busy/voicemail/hang-up.
    assert dispositions["answered"] == 3
    assert {"no_answer", "busy", "voicemail", "hung_up"} <= set(dispositions)
    # Every unanswered contact was retried up to the demo's 3 attempts.
    per_contact = {int(k): v for k, v in summary["calls_per_contact"].items()}
    assert sum(per_contact.values()) == 8
    assert max(per_contact) == 3
    assert sum(calls * n for calls, n in per_contact.items()) == summary["calls"]
    assert not {"pending", "claimed", "dialed"} & set(summary["callbacks"])
    assert summary["outcomes"] == {}
    assert summary["database"] is None
    # Progress went to stderr; stdout is only the JSON line.
    assert "Campaign" in result.stderr and "Summary" in result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
