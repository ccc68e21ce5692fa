"""The supervisor of ``serve --workers`` (the workers themselves: test_cli_commands)."""

from __future__ import annotations

import time

import pytest

from tests.integration.telephony_support import free_port
from voicebot import serving


def test_a_worker_that_fails_before_serving_stops_the_supervisor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken app fails the same way in every worker: the supervisor gives up at once,
    rather than start replacement after replacement."""
    spec = serving.WorkerSpec(
        "voicebot.no_such_module:app", "127.0.0.1", free_port(), {"log_config": None}
    )
    started = time.monotonic()
    assert serving.Supervisor(spec, 2, poll_seconds=0.1).run() == 1
    assert time.monotonic() - started < 30
    assert "failed before serving; stopping" in caplog.text
    assert "starting another" not in caplog.text


def test_a_port_in_use_is_reported_before_any_worker_starts() -> None:
    with serving.listening_socket("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            serving.check_port_free("127.0.0.1", port)
