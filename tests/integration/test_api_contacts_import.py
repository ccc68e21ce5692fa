"""POST /v1/campaigns/{id}/contacts through the real app on both databases: formats and
encodings, bad rows and bad files, limits, re-imports, and the do-not-call list."""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from tests.integration.api_support import Api, count, running_api, snapshot
from voicebot.config import Settings
from voicebot.db import contacts as db_contacts
from voicebot.db.models import AuditEntry, CallBack, Campaign, Contact, ContactPhone, DoNotCall
from voicebot.domain.types import Role

HEADER = "external_id,name,phone,alternate_phones,loan_id,amount_due,currency,due_date,persona"
ROWS = [
    "L-1,张三,13812345678,+8613912345678;13712345678,LN-1,1200.50,CNY,2026-07-01,answers",
    "L-2,李四,+8613800000002,,LN-2,88,CNY,2026-07-02,busy",
]
CSV = HEADER + "\n" + "\n".join(ROWS) + "\n"
# What the campaigns' dialog (car_loan_followup.zh-CN) needs of every contact, beyond a name.
DUE = {"amount_due": "100", "due_date": "2026-07-01"}


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    limited = settings.model_copy(update={"import_max_rows": 6, "import_max_bytes": 4096})
    async with running_api(limited) as running:
        yield running


@pytest.fixture
async def campaign_id(api: Api) -> int:
    return int((await api.create_campaign())["id"])


async def _contacts(api: Api) -> list[Contact]:
    async with api.sessionmaker() as session:
        query = select(Contact).options(selectinload(Contact.phones)).order_by(Contact.id)
        return list((await session.scalars(query)).all())


async def _callbacks(api: Api) -> list[tuple[Any, ...]]:
    """(campaign, contact, phone, status, attempt, reason) of every call-back, in id order."""
    async with api.sessionmaker() as session:
        rows = await session.execute(
            select(
                CallBack.campaign_id,
                CallBack.contact_id,
                CallBack.phone_id,
                CallBack.status,
                CallBack.attempt,
                CallBack.reason,
            ).order_by(CallBack.id)
        )
        return [tuple(row) for row in rows]


def _rows_of(response: Any) -> list[tuple[int, str | None]]:
    return [(e["row"], e["field"]) for e in response.json()["detail"]["errors"]]


async def test_a_json_import_stores_contacts_numbers_and_initial_callbacks(
    api: Api, campaign_id: int
) -> None:
    response = await api.import_json(
        campaign_id,
        [
            {
                "external_id": "L-1",
                "name": "张三",
                "phone": "13812345678",
                "alternate_phones": ["+8613912345678"],
                "loan_id": "LN-1",
                "amount_due": 1200.5,
                "currency": "cny",
                "due_date": "2026-07-01",
                "days_past_due": 12,
                "persona": "answers",
            },
            {"external_id": "L-2", "name": "Ann", "phone": "+1 212 555 0123", **DUE},
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": 2,
        "created": 2,
        "updated": 0,
        "skipped": 0,
        "callbacks_created": 2,
        "opted_out_phones": 0,
        "not_dialable": [],
        "errors": [],
    }
    first, second = await _contacts(api)
    assert (first.external_id, first.name, first.time_zone) == ("L-1", "张三", "Asia/Shanghai")
    assert (first.amount_due, first.currency, first.days_past_due) == (
        Decimal("1200.50"),
        "CNY",
        12,
    )
    assert first.fields == {"persona": "answers"}
    assert [(p.position, p.e164, p.status) for p in first.phones] == [
        (0, "+8613812345678", "valid"),
        (1, "+8613912345678", "valid"),
    ]
    assert second.time_zone == "America/New_York"
    assert await _callbacks(api) == [
        (campaign_id, first.id, first.phones[0].id, "pending", 1, "initial"),
        (campaign_id, second.id, second.phones[0].id, "pending", 1, "initial"),
    ]
    async with api.sessionmaker() as session:
        callback = await session.scalar(select(CallBack).limit(1))
        audit = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "contacts.import")
        )
    assert callback is not None
    assert abs((callback.due_at - datetime.now(UTC)).total_seconds()) < 60
    assert audit is not None and audit.target_id == str(campaign_id)
    assert audit.actor.endswith(":operator-key")
    assert (audit.details["created"], audit.details["received"]) == (2, 2)


ENCODINGS = {
    "utf8": (CSV.encode("utf-8"), "text/csv"),
    "utf8-bom": (codecs.BOM_UTF8 + CSV.encode("utf-8"), "text/csv"),
    "crlf-declared": (CSV.replace("\n", "\r\n").encode("utf-8"), "text/csv; charset=utf-8"),
    "gbk": (CSV.encode("gbk"), "text/csv"),
    "gb18030": (CSV.encode("gb18030"), "application/csv"),
    "gbk-declared": (CSV.encode("gbk"), 'text/csv; charset="GBK"'),
}


async def test_csv_in_every_accepted_encoding(api: Api, campaign_id: int) -> None:
    for variant, (encoded, content_type) in ENCODINGS.items():
        # Each variant imports its own contacts: "L-1" becomes "gbk/L-1" …
        encoded = encoded.replace(b"\nL-", f"\n{variant}/L-".encode())
        response = await api.import_csv(campaign_id, encoded, content_type=content_type)
        assert response.status_code == 200, (variant, response.text)
        assert (response.json()["created"], response.json()["callbacks_created"]) == (2, 2)
    contacts = await _contacts(api)
    assert [c.external_id for c in contacts[:2]] == ["utf8/L-1", "utf8/L-2"]
    for variant, pair in zip(
        ENCODINGS, zip(contacts[::2], contacts[1::2], strict=True), strict=True
    ):
        first, second = pair
        assert (first.external_id, first.name, second.name) == (f"{variant}/L-1", "张三", "李四")
        assert [p.e164 for p in first.phones] == [
            "+8613812345678",
            "+8613912345678",
            "+8613712345678",
        ]
        assert first.fields == {"persona": "answers"}


async def _mis_encoded_bytes_are_refused_naming_where(api: Api, campaign_id: int) -> None:
    data = CSV.encode("utf-8") + b"L-3,\xff\xfe\xfd,13800000003,,,,,,\n"
    response = await api.import_csv(campaign_id, data)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["error"] == "invalid_encoding"
    assert (detail["offset"], detail["line"]) == (data.index(b"\xff"), 4)
    assert "UTF-8" in detail["message"] and "GB18030" in detail["message"]
    # A declared charset that does not match is refused the same way.
    response = await api.import_csv(
        campaign_id, CSV.encode("gbk"), content_type="text/csv; charset=utf-8"
    )
    assert response.status_code == 422
    assert response.json()["detail"]["error"] == "invalid_encoding"
    response = await api.import_csv(campaign_id, b"a", content_type="text/csv; charset=ebcdic-9")
    assert (response.status_code, response.json()["detail"]["error"]) == (
        415,
        "unsupported_charset",
    )
    assert await count(api.sessionmaker, Contact) == 0


UNREADABLE = [
    ("external_id,name,loan_id\nL-1,a,b\n", "invalid_columns", {"missing": ["phone"]}),
    ("external_id,name,phone,name\nL-1,a,138,b\n", "invalid_columns", {"column": 4}),
    (HEADER + '\nL-1,"张三,13812345678\nL-2,b,139\n', "malformed_csv", {"line": 2}),
    ("", "empty_file", {}),
]


async def _files_that_cannot_be_read_are_refused_whole(api: Api, campaign_id: int) -> None:
    for text, code, where in UNREADABLE:
        response = await api.import_csv(campaign_id, text.encode(), mode="skip_invalid")
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail["error"] == code
        assert where.items() <= detail.items()
    assert await count(api.sessionmaker, Contact) == 0


async def _bad_rows_are_all_reported_with_line_field_and_reason(api: Api, campaign_id: int) -> None:
    text = (
        "external_id,name,phone,time_zone,amount_due,due_date\n"
        "L-1,ok,13812345678,,1,2026-07-01\n"
        "L-2,short row\n"  # ragged: line 3
        "L-3,bad phone,12345,,1,2026-07-01\n"
        "L-4,bad zone,13800000004,Asia/Atlantis,1,2026-07-01\n"
        '"L-5","multi\nline",13800000005,,-2,2026-07-01\n'  # starts on line 6
        "L-1,again,13800000006,,1,2026-07-01\n"
    )
    response = await api.import_csv(campaign_id, text.encode())
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["error"] == "invalid_rows"
    assert detail["received"] == 6
    assert _rows_of(response) == [
        (3, None),
        (4, "phone"),
        (5, "time_zone"),
        (6, "amount_due"),
        (8, "external_id"),
    ]
    reasons = [e["reason"] for e in detail["errors"]]
    assert "found 2" in reasons[0]
    assert "unknown IANA time zone" in reasons[2]
    assert "also in row 2" in reasons[4]
    assert await count(api.sessionmaker, Contact) == 0


async def _json_rows_are_reported_by_index(api: Api, campaign_id: int) -> None:
    response = await api.import_json(
        campaign_id,
        [
            {"external_id": "L-1", "name": "a", "phone": "13812345678", **DUE},
            {"external_id": "L-2", "name": "b", "phone": "+99912345", **DUE},
            "not an object",
            {"external_id": "L-3", "name": "c", "phone": "13812345679", "time_zone": "UTC+8"},
        ],
    )
    assert response.status_code == 422
    assert _rows_of(response) == [(1, "phone"), (2, None), (3, "time_zone")]


async def test_all_or_nothing_leaves_stored_data_unchanged(api: Api, campaign_id: int) -> None:
    assert (await api.import_csv(campaign_id, CSV.encode())).status_code == 200
    before = await snapshot(api.sessionmaker)
    changed = (
        HEADER + "\n"
        "L-1,张三改名,13700000000,,LN-1,1,CNY,2026-08-01,busy\n"
        "L-9,新人,13800000009,,,1,CNY,2026-08-01,\n"
        "L-10,坏号码,1380000,,,1,CNY,2026-08-01,\n"
    )
    response = await api.import_csv(campaign_id, changed.encode())
    assert response.status_code == 422
    assert _rows_of(response) == [(4, "phone")]
    assert await snapshot(api.sessionmaker) == before


async def test_a_failure_while_storing_rolls_back_every_bulk_write(
    api: Api, campaign_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await api.import_csv(campaign_id, CSV.encode())).status_code == 200
    before = await snapshot(api.sessionmaker)

    async def fail(*args: Any) -> None:
        raise RuntimeError("the database went away")

    # Contacts and numbers are written (COPY / executemany) before call-backs are looked at.
    monkeypatch.setattr(db_contacts, "_callbacks_of", fail)
    changed = CSV.replace("张三", "张三丰") + "L-3,王五,13800000003,,,1,CNY,2026-08-01,\n"
    with pytest.raises(RuntimeError, match="went away"):
        await api.import_csv(campaign_id, changed.encode())
    assert await snapshot(api.sessionmaker) == before


async def test_concurrent_imports_of_the_same_contacts_wait_for_each_other(
    api: Api, campaign_id: int
) -> None:
    other = (await api.create_campaign("autumn"))["id"]
    responses = await asyncio.gather(
        *(api.import_csv(target, CSV.encode()) for target in (campaign_id, campaign_id, other))
    )
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    assert sorted(r.json()["created"] for r in responses) == [0, 0, 2]
    assert sorted(r.json()["callbacks_created"] for r in responses) == [0, 2, 2]
    assert await count(api.sessionmaker, Contact) == 2
    assert await count(api.sessionmaker, ContactPhone) == 4
    assert sorted(c[0] for c in await _callbacks(api)) == [campaign_id] * 2 + [other] * 2


async def test_skip_invalid_imports_the_good_rows_and_reports_the_bad(
    api: Api, campaign_id: int
) -> None:
    text = HEADER + "\n" + ROWS[0] + "\nL-3,坏,12,,,,,,\n" + ROWS[1] + "\n"
    response = await api.import_csv(campaign_id, text.encode(), mode="skip_invalid")
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["received"], result["created"], result["skipped"]) == (3, 2, 1)
    assert [(e["row"], e["field"]) for e in result["errors"]] == [(3, "phone")]
    assert [c.external_id for c in await _contacts(api)] == ["L-1", "L-2"]


async def _reimporting_updates_the_contact_and_its_numbers(api: Api, campaign_id: int) -> None:
    assert (await api.import_csv(campaign_id, CSV.encode())).status_code == 200
    (first, _) = await _contacts(api)
    kept = next(p for p in first.phones if p.e164 == "+8613912345678")
    async with api.sessionmaker() as session:
        await session.execute(
            update(ContactPhone).where(ContactPhone.id == kept.id).values(consecutive_failures=2)
        )
        await session.commit()
    # L-1: new name, primary dropped, the kept alternate becomes primary, a new alternate.
    again = HEADER + "\nL-1,张三丰,+8613912345678,13600000000,LN-1,10,CNY,2026-09-01,voicemail\n"
    response = await api.import_csv(campaign_id, again.encode())
    assert response.status_code == 200, response.text
    assert (response.json()["created"], response.json()["updated"]) == (0, 1)
    assert response.json()["callbacks_created"] == 0  # its initial call-back is still pending
    first, second = await _contacts(api)
    assert (first.name, first.amount_due, first.fields) == (
        "张三丰",
        Decimal("10.00"),
        {"persona": "voicemail"},
    )
    assert [(p.position, p.e164, p.consecutive_failures) for p in first.phones] == [
        (0, "+8613912345678", 2),
        (1, "+8613600000000", 0),
    ]
    assert first.phones[0].id == kept.id
    assert second.name == "李四"
    callbacks = await _callbacks(api)
    assert len(callbacks) == 2
    # The pending call-back whose number was removed now dials the contact's first number.
    assert callbacks[0][2] == kept.id
    assert await count(api.sessionmaker, Contact) == 2


async def _a_finished_contact_gets_a_new_callback_when_imported_again(
    api: Api, campaign_id: int
) -> None:
    assert (await api.import_csv(campaign_id, CSV.encode())).status_code == 200
    async with api.sessionmaker() as session:
        await session.execute(update(CallBack).values(status="done"))
        await session.commit()
    other = await api.create_campaign("autumn")
    response = await api.import_csv(campaign_id, CSV.encode())
    assert response.json()["callbacks_created"] == 2
    response = await api.import_csv(other["id"], CSV.encode())
    assert response.json()["callbacks_created"] == 2
    assert [c[3] for c in await _callbacks(api)] == ["done"] * 2 + ["pending"] * 4


async def test_numbers_on_the_do_not_call_list_are_stored_opted_out(
    api: Api, campaign_id: int
) -> None:
    for number in ("+8613812345678", "+8613800000002"):
        response = await api.http.post(
            "/v1/do-not-call", json={"phone": number, "reason": "asked"}, headers=api.auth()
        )
        assert response.status_code == 201
    response = await api.import_csv(campaign_id, CSV.encode())
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["callbacks_created"], result["opted_out_phones"]) == (2, 1, 2)
    assert result["not_dialable"] == [
        {"external_id": "L-2", "row": 3, "reason": "every number is on the do-not-call list"}
    ]
    first, second = await _contacts(api)
    assert [p.status for p in first.phones] == ["opted_out", "valid", "valid"]
    assert [p.status for p in second.phones] == ["opted_out"]
    (callback,) = await _callbacks(api)
    assert (callback[1], callback[2]) == (first.id, first.phones[1].id)
    assert await count(api.sessionmaker, DoNotCall) == 2


async def _finished_and_unknown_campaigns_take_no_contacts(api: Api, campaign_id: int) -> None:
    await api.http.post(f"/v1/campaigns/{campaign_id}/cancel", headers=api.auth())
    response = await api.import_csv(campaign_id, CSV.encode())
    assert response.status_code == 409
    assert response.json()["detail"]["error"] == "campaign_finished"
    assert (await api.import_csv(9999, CSV.encode())).status_code == 404
    assert await count(api.sessionmaker, Contact) == 0


async def _a_body_over_the_limit_is_refused_before_and_while_reading(
    api: Api, campaign_id: int
) -> None:
    big = (HEADER + "\n" + ROWS[0] + "\n" + "#" * 5000 + "\n").encode()
    response = await api.import_csv(campaign_id, big)
    assert response.status_code == 413
    assert response.json()["detail"] == {
        "error": "body_too_large",
        "message": "the upload is larger than 4096 bytes",
        "max_bytes": 4096,
    }
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):  # 100 KiB offered, without a Content-Length
            sent.append(1)
            yield b"x" * 1024

    response = await api.http.post(
        f"/v1/campaigns/{campaign_id}/contacts",
        content=chunks(),
        headers={**api.auth(Role.OPERATOR), "Content-Type": "text/csv"},
    )
    assert response.status_code == 413
    assert len(sent) < 10  # it stopped reading soon after the limit
    assert await count(api.sessionmaker, Contact) == 0


async def _more_rows_than_the_limit_is_413(api: Api, campaign_id: int) -> None:
    rows = [f"L-{i},n,1380000000{i}" for i in range(7)]
    response = await api.import_csv(
        campaign_id, ("external_id,name,phone\n" + "\n".join(rows)).encode()
    )
    assert response.status_code == 413
    assert response.json()["detail"]["error"] == "too_many_rows"
    contacts = [
        {"external_id": f"L-{i}", "name": "n", "phone": "13812345678", **DUE} for i in range(7)
    ]
    response = await api.import_json(campaign_id, contacts)
    assert response.status_code == 413
    response = await api.import_json(campaign_id, contacts[:6])
    assert response.status_code == 200, response.text


async def _content_types_and_query_parameters_are_checked(api: Api, campaign_id: int) -> None:
    response = await api.import_csv(campaign_id, b"<contacts/>", content_type="application/xml")
    assert (response.status_code, response.json()["detail"]["error"]) == (
        415,
        "unsupported_media_type",
    )
    response = await api.import_csv(campaign_id, CSV.encode(), default_region="Narnia")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "default_region"]
    response = await api.import_csv(campaign_id, CSV.encode(), mode="most")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "mode"]
    response = await api.http.post(
        f"/v1/campaigns/{campaign_id}/contacts",
        content=json.dumps([{"external_id": "x"}]),
        headers={**api.auth(Role.OPERATOR), "Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()["detail"]["error"]) == (422, "invalid_body")
    assert await count(api.sessionmaker, Contact) == 0


async def test_unreadable_uploads_are_refused_whole(api: Api, campaign_id: int) -> None:
    """Encoding and file-structure problems: 422, and no row is kept."""
    await _mis_encoded_bytes_are_refused_naming_where(api, campaign_id)
    await _files_that_cannot_be_read_are_refused_whole(api, campaign_id)


async def test_every_bad_row_is_reported_and_nothing_stored(api: Api, campaign_id: int) -> None:
    """CSV rows by line, JSON rows by index."""
    await _bad_rows_are_all_reported_with_line_field_and_reason(api, campaign_id)
    await _json_rows_are_reported_by_index(api, campaign_id)


async def test_reimports_update_contacts_and_queue_only_finished_ones_again(
    api: Api, campaign_id: int
) -> None:
    """Re-importing an external_id."""
    await _reimporting_updates_the_contact_and_its_numbers(api, campaign_id)
    await _a_finished_contact_gets_a_new_callback_when_imported_again(api, campaign_id)


async def test_limits_on_bytes_and_rows_are_413(api: Api, campaign_id: int) -> None:
    """Past import_max_bytes or import_max_rows."""
    await _a_body_over_the_limit_is_refused_before_and_while_reading(api, campaign_id)
    await _more_rows_than_the_limit_is_413(api, campaign_id)


async def test_requests_refused_before_any_row_is_read(api: Api, campaign_id: int) -> None:
    """Campaign state, content type and parameters."""
    await _content_types_and_query_parameters_are_checked(api, campaign_id)
    await _finished_and_unknown_campaigns_take_no_contacts(api, campaign_id)


def _with_field(extra: str, *, name: str = '"王五"') -> bytes:
    """A JSON body of one contact, written by hand: json.dumps writes neither NaN as JSON
    allows it nor a lone surrogate escape."""
    body = (
        '{"contacts": [{"external_id": "L-7", "name": ' + name + ', "phone": "13812345678", '
        '"amount_due": "10", "due_date": "2026-07-01"' + extra + "}]}"
    )
    return body.encode()


UNSTORABLE_VALUES = [
    pytest.param(_with_field(', "x": ' + "[" * 900 + "]" * 900), "x", "nested", id="deep-list"),
    pytest.param(_with_field(', "x": 1e5000'), "x", "finite", id="huge-number"),
    pytest.param(_with_field(', "x": NaN'), "x", "finite", id="nan"),
    pytest.param(_with_field(', "x": {"y": -Infinity}'), "x", "finite", id="infinity"),
    pytest.param(_with_field(', "x": "\\ud800"'), "x", "lone surrogate", id="surrogate-value"),
    pytest.param(_with_field(', "\\udc00x": 1'), "\\udc00x", "lone surrogate", id="surrogate-key"),
    pytest.param(_with_field("", name='"\\ud800"'), "name", "lone surrogate", id="surrogate-name"),
    pytest.param(_with_field(', "amount_due": NaN'), "amount_due", "finite", id="nan-amount"),
]


@pytest.mark.parametrize(("body", "field", "needle"), UNSTORABLE_VALUES)
async def test_values_no_database_can_store_are_row_errors(
    settings: Settings, body: bytes, field: str, needle: str
) -> None:
    """Each of these was a 500 (recursion, or the database refusing the row), or on SQLite
    stored in a form that broke every later read of the contact."""
    async with running_api(settings) as api:
        campaign_id = int((await api.create_campaign())["id"])
        assert (await api.import_csv(campaign_id, CSV.encode())).status_code == 200
        before = await snapshot(api.sessionmaker)
        response = await api.http.post(
            f"/v1/campaigns/{campaign_id}/contacts",
            params={"default_region": "CN"},
            content=body,
            headers={**api.auth(Role.OPERATOR), "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]["errors"]
        assert (error["row"], error["field"]) == (0, field)
        assert needle in error["reason"]
        assert await snapshot(api.sessionmaker) == before
        listed = await api.http.get("/v1/contacts", headers=api.auth(Role.ANALYST))
        assert listed.status_code == 200, listed.text


async def test_json_nested_deeper_than_python_reads_is_refused_naming_where(
    settings: Settings,
) -> None:
    async with running_api(settings) as api:
        campaign_id = int((await api.create_campaign())["id"])
        body = _with_field(',\n"x": ' + "[" * 5000 + "]" * 5000)
        response = await api.http.post(
            f"/v1/campaigns/{campaign_id}/contacts",
            content=body,
            headers={**api.auth(Role.OPERATOR), "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert (detail["error"], detail["line"]) == ("invalid_json", 2)
        assert "nested too deeply" in detail["message"]
        assert await count(api.sessionmaker, Contact) == 0


async def test_contacts_the_campaigns_dialog_cannot_call_are_refused(
    api: Api, campaign_id: int
) -> None:
    """The shipped dialogs need amount_due and due_date: a contact without them was imported
    and queued, and its call failed only once the borrower had answered."""
    text = (
        "external_id,name,phone,amount_due,due_date\n"
        "L-1,张三,13812345678,100,2026-07-01\n"
        "L-2,李四,13800000002,,\n"
        "L-3,王五,13800000003,100,\n"
    )
    response = await api.import_csv(campaign_id, text.encode())
    assert response.status_code == 422, response.text
    assert _rows_of(response) == [(3, "amount_due"), (3, "due_date"), (4, "due_date")]
    reasons = {e["reason"] for e in response.json()["detail"]["errors"]}
    assert reasons == {"required by the campaign's dialog car_loan_followup.zh-CN"}
    assert await count(api.sessionmaker, Contact) == 0
    # As any bad row, skipped on request; the good row is imported and queued.
    response = await api.import_csv(campaign_id, text.encode(), mode="skip_invalid")
    assert response.status_code == 200, response.text
    assert (response.json()["created"], response.json()["skipped"]) == (1, 2)
    assert [c.external_id for c in await _contacts(api)] == ["L-1"]
    assert len(await _callbacks(api)) == 1


async def test_a_dialogs_own_fields_are_checked_as_a_call_reads_them(
    settings: Settings, tmp_path: Path
) -> None:
    script = (Path(settings.dialogs_dir) / "car_loan_followup.zh-CN.yaml").read_text("utf-8")
    custom = script.replace(
        "  due_date: {type: date, private: true}\n",
        "  due_date: {type: date, private: true}\n  branch_code: {type: digits, required: false}\n",
    )
    assert custom != script
    (tmp_path / "custom.zh-CN.yaml").write_text(custom, encoding="utf-8")
    async with running_api(settings.model_copy(update={"dialogs_dir": str(tmp_path)})) as api:
        campaign_id = int((await api.create_campaign(dialog_id="custom.zh-CN"))["id"])
        contacts = [
            {"external_id": "L-1", "name": "a", "phone": "13812345678", **DUE},
            {"external_id": "L-2", "name": "b", "phone": "13800000002", **DUE, "branch_code": 7},
            {"external_id": "L-3", "name": "c", "phone": "13800000003", **DUE, "branch_code": "7a"},
        ]
        response = await api.import_json(campaign_id, contacts)
        assert response.status_code == 422, response.text
        ((error),) = response.json()["detail"]["errors"]
        assert (error["row"], error["field"]) == (2, "branch_code")
        assert error["reason"] == (
            "not digits: '7a' (the campaign's dialog custom.zh-CN reads it as digits)"
        )
        assert (await api.import_json(campaign_id, contacts[:2])).status_code == 200


async def test_a_campaign_whose_dialog_cannot_be_loaded_takes_no_contacts(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "broken.zh-CN.yaml").write_text("id: broken\nstates: [\n", encoding="utf-8")
    shipped = Path(settings.dialogs_dir) / "car_loan_followup.zh-CN.yaml"
    (tmp_path / shipped.name).write_bytes(shipped.read_bytes())
    async with running_api(settings.model_copy(update={"dialogs_dir": str(tmp_path)})) as api:
        campaign_id = int((await api.create_campaign())["id"])
        (tmp_path / shipped.name).unlink()  # gone since the campaign was made
        for dialog_id, code, needle in (
            # Not in this dialogs_dir: the installed ones are named.
            ("car_loan_followup.zh-CN", "unknown_dialog", "installed: broken.zh-CN"),
            ("broken.zh-CN", "invalid_dialog", "fails its checks"),
        ):
            # Set in the database: the file may go missing after the campaign was created.
            async with api.sessionmaker() as session:
                await session.execute(
                    update(Campaign).where(Campaign.id == campaign_id).values(dialog_id=dialog_id)
                )
                await session.commit()
            response = await api.import_csv(campaign_id, CSV.encode())
            assert response.status_code == 409, response.text
            detail = response.json()["detail"]
            assert (detail["error"], detail["dialog_id"]) == (code, dialog_id)
            assert repr(dialog_id) in detail["message"]
            assert needle in detail["message"]
        assert await count(api.sessionmaker, Contact) == 0


async def test_western_and_utf16_files_are_read_or_refused_never_misread(
    api: Api, campaign_id: int
) -> None:
    text = (
        "external_id,name,phone,amount_due,due_date\nL-1,Renée Müller,13812345678,100,2026-07-01\n"
    )
    # Windows-1252, as Western Excel saves: was stored as "Ren閑 M黮ler".
    response = await api.import_csv(campaign_id, text.encode("cp1252"))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert (detail["error"], detail["line"]) == ("invalid_encoding", 2)
    assert "windows-1252" in detail["message"]
    # UTF-16 without a BOM: was a confusing header error.
    response = await api.import_csv(campaign_id, text.encode("utf-16-le"))
    assert response.status_code == 422, response.text
    assert "charset=utf-16-le" in response.json()["detail"]["message"]
    assert await count(api.sessionmaker, Contact) == 0

    response = await api.import_csv(
        campaign_id, text.encode("cp1252"), content_type="text/csv; charset=windows-1252"
    )
    assert response.status_code == 200, response.text
    response = await api.import_csv(campaign_id, text.replace("L-1", "L-2").encode("utf-16"))
    assert response.status_code == 200, response.text
    assert [c.name for c in await _contacts(api)] == ["Renée Müller", "Renée Müller"]
