"""Log lines, JSON or text: the call id is carried (JSON), phone numbers and secrets never are."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from voicebot.logs import bound_call, configure_logging, redact


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers[:] = []  # pytest's own capture handlers would make it leave logging alone
    stream = io.StringIO()
    configure_logging("info", json_lines=True, secrets=["s3cr3t-token"], stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_numbers_and_secrets_are_masked_and_the_call_id_kept(lines: io.StringIO) -> None:
    log = logging.getLogger("voicebot.test")
    log.info("call %s: dialing %s", 42, "+8613812345678")
    log.warning("token %s refused for 138 1234 5678", "s3cr3t-token", extra={"call_id": 7})
    with bound_call(9):
        log.info("answered by 13812345678")
    log.info("imported 3 contacts")
    first, second, third, fourth = _records(lines)
    assert (first["message"], first["call_id"], first["level"]) == (
        "call 42: dialing +86138****5678",
        42,
        "info",
    )
    assert second["message"] == "token [secret] refused for 138****5678"
    assert second["call_id"] == 7
    assert (third["message"], third["call_id"]) == ("answered by 138****5678", 9)
    assert "call_id" not in fourth
    assert "13812345678" not in lines.getvalue()


def test_a_traceback_is_redacted_too(lines: io.StringIO) -> None:
    try:
        raise ValueError("bad number +8613812345678 with s3cr3t-token")
    except ValueError:
        logging.getLogger("voicebot.test").exception("call 5 failed")
    (record,) = _records(lines)
    assert "+86138****5678" in str(record["exception"])
    assert "s3cr3t-token" not in str(record["exception"])
    assert record["call_id"] == 5


async def test_the_bound_call_follows_tasks_started_inside(lines: io.StringIO) -> None:
    async def work() -> None:
        logging.getLogger("voicebot.test").info("a turn")

    with bound_call(11):
        task = asyncio.create_task(work())
    await task
    assert _records(lines)[0]["call_id"] == 11


def test_short_numbers_and_ids_stay() -> None:
    text = "attempt 3 of 5, 1200.00 CNY, due 2026-11-28 14:30, call 1234"
    assert redact(text) == text
    assert redact("+1 415 555 0100 / 138-1234-5678") == "+141****0100 / 138****5678"


def test_numbers_in_chinese_text_spoken_numbers_and_api_keys_are_masked() -> None:
    assert redact("新号码是13812345678吗") == "新号码是138****5678吗"
    assert redact("heard 一三八 一二三四 五六七八 and 일이삼사 오육칠팔") == "heard **** and ****"
    assert redact("heard one three eight one two three four five six seven eight") == ("heard ****")
    assert redact('"PATCH /v1/api-keys/vb_0123456789ab_Zx-9_aB HTTP/1.1" 422') == (
        '"PATCH /v1/api-keys/vb_0123456789ab_[secret] HTTP/1.1" 422'
    )


@pytest.fixture
def text_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    access = logging.getLogger("uvicorn.access")
    saved_access = (access.handlers[:], access.propagate, access.level, access.disabled)
    # Servers started by earlier tests may have set uvicorn's loggers' levels (as uvicorn.run
    # does): this test is about where the records go, so let them through.
    access.setLevel(logging.INFO)
    access.disabled = False
    root.handlers[:] = []
    stream = io.StringIO()
    configure_logging("info", json_lines=False, secrets=["s3cr3t-token"], stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    access.handlers[:], access.propagate, level, access.disabled = saved_access
    access.setLevel(level)


def test_plain_text_lines_are_redacted_too(text_lines: io.StringIO) -> None:
    log = logging.getLogger("voicebot.test")
    log.info("call %s: dialing %s with %s", 42, "+8613812345678", "s3cr3t-token")
    try:
        raise ValueError("bad number 13812345678")
    except ValueError:
        log.exception("call 5 failed")
    # uvicorn's access log, which has handlers of its own unless configured to pass records up
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/x/vb_0123456789ab_secretpart",
        "1.1",
        404,
    )
    text = text_lines.getvalue()
    assert "call 42: dialing +86138****5678 with [secret]" in text
    assert "138****5678" in text and "13812345678" not in text
    assert "s3cr3t-token" not in text and "secretpart" not in text
    assert "uvicorn.access" in text


def test_a_root_logger_configured_elsewhere_is_left_alone() -> None:
    root = logging.getLogger()
    foreign = logging.NullHandler()
    saved = root.handlers[:]
    root.handlers[:] = [foreign]
    try:
        configure_logging("debug", json_lines=True)
        assert root.handlers == [foreign]
    finally:
        root.handlers[:] = saved
