"""Contact uploads, pure: decoding, CSV and JSON reading, and row validation."""

from __future__ import annotations

import codecs
import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from voicebot.domain.contacts import (
    ContactFileError,
    ContactRow,
    RawRow,
    RowError,
    TooManyRows,
    UnsupportedCharset,
    check_region,
    decode_upload,
    parse_upload,
    read_csv,
    read_json,
    validate_contact,
    validate_rows,
)
from voicebot.domain.phones import InvalidPhoneNumber, parse_phone

HEADER = (
    "external_id,name,phone,alternate_phones,loan_id,amount_due,currency,due_date,days_past_due"
)


def _valid(values: dict[str, Any], region: str | None = "CN") -> ContactRow:
    result = validate_contact(values, row=2, default_region=region)
    assert isinstance(result, ContactRow), result
    return result


def _errors(values: dict[str, Any], region: str | None = "CN") -> list[tuple[str | None, str]]:
    result = validate_contact(values, row=7, default_region=region)
    assert isinstance(result, list), result
    assert all(e.row == 7 for e in result)
    return [(e.field, e.reason) for e in result]


BASE = {"external_id": "L-1", "name": "张三", "phone": "13812345678"}


# -- decoding -----------------------------------------------------------------------------------


def test_utf8_with_and_without_bom_and_gb18030_decode_to_the_same_text() -> None:
    text = f"{HEADER}\nL-1,张三,13812345678,,,,,,\n"
    assert decode_upload(text.encode(), None) == text
    assert decode_upload(codecs.BOM_UTF8 + text.encode(), None) == text
    assert decode_upload(text.encode("gbk"), None) == text
    assert decode_upload(text.encode("gb18030"), None) == text
    # GB18030 beyond GBK: a character only the 4-byte form encodes.
    assert decode_upload("𠀀".encode("gb18030"), None) == "𠀀"


def test_a_declared_charset_is_honoured_strictly() -> None:
    assert decode_upload("张三".encode("gbk"), "GBK") == "张三"
    assert decode_upload(codecs.BOM_UTF8 + b"abc", "utf-8") == "abc"
    with pytest.raises(ContactFileError) as bad:
        decode_upload("张三".encode("gbk"), "utf-8")
    assert bad.value.code == "invalid_encoding"
    assert bad.value.details["offset"] == 0
    with pytest.raises(UnsupportedCharset):
        decode_upload(b"abc", "klingon-8")
    with pytest.raises(UnsupportedCharset):
        decode_upload(b"abc", "base64")


def test_bytes_that_are_neither_utf8_nor_gb18030_name_the_offset_and_line() -> None:
    data = b"external_id,name,phone\nL-1,ok,138\nL-2,\xff\xfe,139\n"
    with pytest.raises(ContactFileError) as bad:
        decode_upload(data, None)
    assert bad.value.code == "invalid_encoding"
    assert bad.value.details["offset"] == data.index(b"\xff")
    assert bad.value.details["line"] == 3
    assert "UTF-8" in bad.value.message and "GB18030" in bad.value.message
    assert "0xff" in bad.value.message


WESTERN = "external_id,name,phone\nL-1,ok,138\nL-2,Renée Müller,139\n"


def test_western_text_is_not_stored_as_chinese_mojibake() -> None:
    # GB18030 decodes these bytes without complaint, as "Ren閑 M黮ler".
    data = WESTERN.encode("cp1252")
    with pytest.raises(ContactFileError) as bad:
        decode_upload(data, None)
    assert bad.value.code == "invalid_encoding"
    assert bad.value.details["line"] == 3
    assert "'閑' (bytes e9 65) inside a Latin word" in bad.value.message
    assert "charset=windows-1252" in bad.value.message
    # A word starting with the accented letter too; declared, the file reads as it should.
    with pytest.raises(ContactFileError):
        decode_upload("L-1,Élodie,138\n".encode("cp1252"), None)
    assert decode_upload(data, "windows-1252") == WESTERN


def test_gbk_characters_that_end_in_a_letters_byte_are_still_chinese() -> None:
    # 玥 (AB 68) and 赟 (DA 53): their second byte is "h" and "S", but no Latin letter is near.
    text = "external_id,name,phone\nL-1,张玥,138\nL-2,李赟,139\nL-3,A座3号,137\n"
    assert decode_upload(text.encode("gbk"), None) == text


def test_utf16_is_read_with_a_bom_and_named_without_one() -> None:
    assert decode_upload(WESTERN.encode("utf-16"), None) == WESTERN
    assert decode_upload(codecs.BOM_UTF16_BE + WESTERN.encode("utf-16-be"), None) == WESTERN
    for codec in ("utf-16-le", "utf-16-be"):
        with pytest.raises(ContactFileError) as bad:
            decode_upload(WESTERN.encode(codec), None)
        assert bad.value.code == "invalid_encoding"
        assert f"charset={codec}" in bad.value.message
        assert decode_upload(WESTERN.encode(codec), codec) == WESTERN
    # A stray NUL in a UTF-8 file is a row's problem (reported by field), not an encoding.
    assert decode_upload(b"external_id,name,phone\nL-1,a\x00b,138\n", None).count("\x00") == 1


# -- CSV --------------------------------------------------------------------------------------


def test_csv_rows_carry_their_line_numbers_past_blank_and_multiline_records() -> None:
    text = '\ufeffexternal_id,name,phone\n\nL-1,"张\n三",138\n,,\nL-2,李四,139\n'
    rows = list(read_csv(text.lstrip("\ufeff"), max_rows=10))
    assert [(r.row, r.values["external_id"]) for r in rows] == [(3, "L-1"), (6, "L-2")]
    assert rows[0].values["name"] == "张\n三"


def test_csv_header_names_are_matched_case_insensitively_and_extras_kept() -> None:
    (row,) = read_csv(" External_ID ,NAME,Phone,persona\nL-1,a,138,busy\n", max_rows=10)
    assert dict(row.values) == {
        "external_id": "L-1",
        "name": "a",
        "phone": "138",
        "persona": "busy",
    }


def test_csv_empty_cells_are_absent_values() -> None:
    (row,) = read_csv("external_id,name,phone,loan_id\nL-1,a,138,\n", max_rows=10)
    assert "loan_id" not in row.values


@pytest.mark.parametrize(
    ("text", "code", "needle"),
    [
        ("", "empty_file", "header"),
        ("\n\n", "empty_file", "header"),
        ("external_id,name\nL-1,a\n", "invalid_columns", "phone"),
        ("external_id,name,phone,name\n", "invalid_columns", "twice"),
        ("external_id,name,,phone\n", "invalid_columns", "column 3"),
        ('external_id,name,phone\nL-1,"unterminated,138\nL-2,b,139\n', "malformed_csv", "line 2"),
        ('external_id,name,phone\nL-1,"a"b,138\n', "malformed_csv", "line 2"),
    ],
)
def test_csv_files_that_cannot_be_read(text: str, code: str, needle: str) -> None:
    with pytest.raises(ContactFileError) as bad:
        list(read_csv(text, max_rows=10))
    assert bad.value.code == code
    assert needle in bad.value.message


def test_ragged_csv_rows_are_row_errors_not_file_errors() -> None:
    text = "external_id,name,phone\nL-1,a\nL-2,b,139,extra\nL-3,c,137\n"
    rows = list(read_csv(text, max_rows=10))
    assert [r.problem for r in rows] == [
        "expected 3 cells as in the header, found 2",
        "expected 3 cells as in the header, found 4",
        None,
    ]


def test_csv_row_limit_counts_data_rows_only() -> None:
    text = "external_id,name,phone\n" + "".join(f"L-{i},n,138\n\n" for i in range(3))
    assert len(list(read_csv(text, max_rows=3))) == 3
    with pytest.raises(TooManyRows):
        list(read_csv(text, max_rows=2))


# -- JSON -------------------------------------------------------------------------------------


def test_json_rows_are_indexed_and_non_objects_reported() -> None:
    rows = read_json('{"contacts": [{"external_id": "L-1"}, 5]}', max_rows=10)
    assert [(r.row, r.problem) for r in rows] == [
        (0, None),
        (1, "each contact must be a JSON object"),
    ]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", "invalid_json"),
        ("[]", "invalid_body"),
        ('{"contacts": {}}', "invalid_body"),
        ('{"people": []}', "invalid_body"),
    ],
)
def test_json_bodies_that_cannot_be_read(text: str, code: str) -> None:
    with pytest.raises(ContactFileError) as bad:
        read_json(text, max_rows=10)
    assert bad.value.code == code


def test_json_row_limit() -> None:
    with pytest.raises(TooManyRows):
        read_json(json.dumps({"contacts": [{}] * 3}), max_rows=2)


# -- validation -------------------------------------------------------------------------------


def test_a_full_row_is_normalised() -> None:
    contact = _valid(
        {
            "external_id": " L-1 ",
            "name": "张三",
            "phone": "138 1234 5678",
            "alternate_phones": "+86 139 1234 5678; 010-12345678",
            "loan_id": 20240001,
            "amount_due": "1200.5",
            "currency": "cny",
            "due_date": "2026-07-01",
            "days_past_due": "12",
            "persona": "busy",
        }
    )
    assert contact.external_id == "L-1"
    assert contact.phones == ("+8613812345678", "+8613912345678", "+861012345678")
    assert contact.time_zone == "Asia/Shanghai"
    assert contact.loan_id == "20240001"
    assert contact.amount_due == Decimal("1200.50")
    assert contact.currency == "CNY"
    assert contact.due_date == date(2026, 7, 1)
    assert contact.days_past_due == 12
    assert dict(contact.fields) == {"persona": "busy"}


def test_time_zone_comes_from_the_number_unless_given() -> None:
    assert _valid({**BASE, "phone": "+12125550123"}).time_zone == "America/New_York"
    assert _valid({**BASE, "phone": "+14155550123"}).time_zone == "America/Los_Angeles"
    assert _valid({**BASE, "phone": "+821012345678"}).time_zone == "Asia/Seoul"
    assert _valid({**BASE, "time_zone": "Asia/Urumqi"}).time_zone == "Asia/Urumqi"


def test_json_values_keep_their_types() -> None:
    contact = _valid(
        {
            **BASE,
            "alternate_phones": ["+8613912345678"],
            "amount_due": Decimal("99.9"),
            "days_past_due": Decimal("3.0"),
            "fields": {"persona": "answers", "score": Decimal("0.5")},
            "segment": 3,
        }
    )
    assert contact.amount_due == Decimal("99.90")
    assert contact.days_past_due == 3
    assert dict(contact.fields) == {"persona": "answers", "score": 0.5, "segment": 3}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, [("external_id", "required"), ("name", "required"), ("phone", "required")]),
        ({**BASE, "name": "  "}, [("name", "required")]),
        ({**BASE, "external_id": "x" * 129}, [("external_id", "longer than 128 characters")]),
        ({**BASE, "external_id": True}, [("external_id", "must be a string, not a boolean")]),
        ({**BASE, "phone": "12345"}, [("phone", "not a valid phone number for its region")]),
        ({**BASE, "phone": "hello"}, [("phone", "not a phone number")]),
        ({**BASE, "phone": "1" * 30}, [("phone", "not a phone number: too long")]),
        ({**BASE, "time_zone": "Mars/Olympus"}, [("time_zone", "unknown IANA time zone")]),
        ({**BASE, "time_zone": "asia/shanghai"}, [("time_zone", "unknown IANA time zone")]),
        ({**BASE, "amount_due": "-1"}, [("amount_due", "≥ 0")]),
        ({**BASE, "amount_due": "1.005"}, [("amount_due", "at most 2 decimal places")]),
        ({**BASE, "amount_due": "NaN"}, [("amount_due", "finite")]),
        ({**BASE, "amount_due": "ten"}, [("amount_due", "not a decimal number")]),
        ({**BASE, "amount_due": "1e12"}, [("amount_due", "less than")]),
        ({**BASE, "currency": "RMB1"}, [("currency", "3-letter")]),
        ({**BASE, "due_date": "01/07/2026"}, [("due_date", "not an ISO date")]),
        ({**BASE, "due_date": 20260701}, [("due_date", "must be an ISO date string")]),
        ({**BASE, "days_past_due": "-3"}, [("days_past_due", "whole number")]),
        ({**BASE, "days_past_due": 1.5}, [("days_past_due", "whole number")]),
        ({**BASE, "days_past_due": 100_001}, [("days_past_due", "between 0 and")]),
        ({**BASE, "alternate_phones": [1]}, [("alternate_phones", "list of strings")]),
        (
            {**BASE, "alternate_phones": "+8613812345678"},
            [("alternate_phones[1]", "the same number as phone")],
        ),
        (
            {**BASE, "alternate_phones": ["13912345678", "139-1234-5678"]},
            [("alternate_phones[2]", "the same number as alternate_phones[1]")],
        ),
        (
            {**BASE, "alternate_phones": ";".join(f"1391234567{i}" for i in range(10))},
            [("alternate_phones", "at most 9")],
        ),
    ],
)
def test_bad_values_are_reported_by_field(
    values: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    found = _errors(values)
    assert [f for f, _ in found] == [f for f, _ in expected]
    for (_, reason), (_, needle) in zip(found, expected, strict=True):
        assert needle in reason


def test_nul_characters_are_refused_wherever_they_hide() -> None:
    # PostgreSQL stores neither NUL in text nor \u0000 in JSON: refused here, not as a 500 there.
    assert _errors({**BASE, "name": "a\x00b"}) == [("name", "contains a NUL character")]
    assert _errors({**BASE, "note": {"deep": ["x\x00"]}}) == [("note", "contains a NUL character")]
    assert _errors({**BASE, "bad\x00key": "x"}) == [("bad\x00key", "contains a NUL character")]


def test_a_national_number_needs_a_region() -> None:
    ((field, reason),) = _errors(BASE, region=None)
    assert field == "phone"
    assert "default_region" in reason
    assert _valid({**BASE, "phone": "+8613812345678"}, region=None).phones == ("+8613812345678",)


def test_errors_never_echo_the_number() -> None:
    found = _errors({**BASE, "alternate_phones": "13900000000x; 12"})
    assert found and all("139" not in reason for _, reason in found)


def test_every_error_of_a_row_is_reported_at_once() -> None:
    found = _errors({"external_id": "L-1", "phone": "1", "currency": "yuan", "days_past_due": "x"})
    assert {f for f, _ in found} == {"name", "phone", "currency", "days_past_due"}


def test_duplicate_external_ids_keep_the_first_row() -> None:
    rows = [RawRow(2, BASE), RawRow(3, {**BASE, "phone": "13912345678"}), RawRow(4, BASE)]
    upload = validate_rows(rows, default_region="CN")
    assert [c.row for c in upload.contacts] == [2]
    assert upload.errors == [
        RowError(3, "external_id", "duplicate external_id: also in row 2"),
        RowError(4, "external_id", "duplicate external_id: also in row 2"),
    ]
    assert (upload.received, upload.rejected) == (3, 2)


def test_parse_upload_reads_a_gbk_csv_end_to_end() -> None:
    text = (
        f"{HEADER},persona\n"
        "L-1,张三,13812345678,13912345678,LN-1,1200.00,CNY,2026-07-01,5,answers\n"
        "L-2,李四,12,,LN-2,,,,,\n"
    )
    upload = parse_upload(
        text.encode("gbk"), upload_format="csv", charset=None, default_region="CN", max_rows=10
    )
    assert [c.name for c in upload.contacts] == ["张三"]
    assert upload.errors == [RowError(3, "phone", "not a valid phone number for its region")]


def test_regions() -> None:
    assert check_region(" cn ") == "CN"
    with pytest.raises(ValueError, match="unknown region"):
        check_region("XX")


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_field_values_nest_ten_levels_at_most() -> None:
    assert _valid({**BASE, "x": _nested(10)}).fields == {"x": _nested(10)}
    assert _errors({**BASE, "x": _nested(11)}) == [
        ("x", "nested more than 10 lists or objects deep")
    ]
    # Far past Python's recursion limit: measured, not recursed into.
    assert _errors({**BASE, "fields": {"x": _nested(100_000)}}) == [
        ("fields", "nested more than 10 lists or objects deep")
    ]


def test_json_nested_past_what_python_parses_is_a_file_error_naming_where() -> None:
    text = '{"contacts": [{"external_id": "L-1",\n "x": ' + "[" * 5000 + "]" * 5000 + "}]}"
    with pytest.raises(ContactFileError) as bad:
        read_json(text, max_rows=10)
    assert bad.value.code == "invalid_json"
    assert bad.value.details == {"line": 2, "column": 17}
    assert "nested too deeply" in bad.value.message


@pytest.mark.parametrize(
    "number",
    ["1e5000", "-1e5000", "NaN", "Infinity", "-Infinity", "9007199254740992", "1e16"],
)
def test_field_numbers_must_be_finite_and_exact_in_every_json_reader(number: str) -> None:
    (row,) = read_json('{"contacts": [{"x": {"y": [' + number + "]}}]}", max_rows=1)
    assert _errors({**BASE, **row.values}) == [
        ("x", "numbers must be finite and at most 9007199254740991 in size; send others as strings")
    ]


def test_field_numbers_inside_the_limits_are_kept() -> None:
    (row,) = read_json('{"contacts": [{"x": [9007199254740991, -2.5, 1e-400]}]}', max_rows=1)
    assert _valid({**BASE, **row.values}).fields == {"x": [9007199254740991, -2.5, 0.0]}


def test_non_finite_json_numbers_in_contact_fields_are_named() -> None:
    (row,) = read_json('{"contacts": [{"amount_due": NaN, "days_past_due": Infinity}]}', max_rows=1)
    assert _errors({**BASE, **row.values}) == [
        ("amount_due", "must be a finite number ≥ 0"),
        ("days_past_due", "must be a whole number"),
    ]


LONE = "\ud800"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({**BASE, "name": f"a{LONE}"}, "name"),
        ({**BASE, "external_id": LONE}, "external_id"),
        ({**BASE, "loan_id": LONE}, "loan_id"),
        ({**BASE, "currency": LONE}, "currency"),
        ({**BASE, "time_zone": LONE}, "time_zone"),
        ({**BASE, "note": LONE}, "note"),
        ({**BASE, "note": {"a": [LONE]}}, "note"),
        ({**BASE, "note": {LONE: 1}}, "note"),
        ({**BASE, "fields": {"b": LONE}}, "fields"),
        ({**BASE, f"k{LONE}": "x"}, "k\\ud800"),  # the key itself is escaped in the error
    ],
)
def test_lone_surrogates_are_refused_in_every_text(values: dict[str, Any], field: str) -> None:
    # What JSON's "\ud800" escape decodes to: not Unicode, so neither database nor the JSON
    # answers can encode it.
    assert _errors(values) == [(field, "is not valid Unicode (a lone surrogate such as \\ud800)")]


def test_csv_cells_and_columns_get_the_same_checks_as_json() -> None:
    # A declared charset can decode escapes into a lone surrogate or a NUL.
    data = b"external_id,name,phone,note\\ud800,x\nL-1,a\\x00b,13812345678,\\ud800,[[1]]\n"
    upload = parse_upload(
        data,
        upload_format="csv",
        charset="unicode_escape",
        default_region="CN",
        max_rows=10,
    )
    assert [(e.row, e.field, e.reason[:20]) for e in upload.errors] == [
        (2, "name", "contains a NUL chara"),
        (2, "note\\ud800", "is not valid Unicode"),
    ]


def test_a_campaigns_check_makes_row_errors_of_otherwise_valid_rows() -> None:
    def needs_amount(contact: ContactRow) -> list[tuple[str, str]]:
        return [] if contact.amount_due is not None else [("amount_due", "needed")]

    rows = [
        RawRow(2, {**BASE, "amount_due": "1"}),
        RawRow(3, {**BASE, "external_id": "L-2"}),
        RawRow(4, {**BASE, "external_id": "L-3", "phone": "1"}),  # its own errors only
    ]
    upload = validate_rows(rows, default_region="CN", check=needs_amount)
    assert [c.row for c in upload.contacts] == [2]
    assert [(e.row, e.field) for e in upload.errors] == [(3, "amount_due"), (4, "phone")]


@pytest.mark.parametrize(
    ("raw", "region", "says"),
    [
        ("13812345678", None, "no country code (write it as +86…, or give default_region"),
        ("hello", "CN", "no number to dial could be read from it"),
        ("1" * 30, "CN", "too long"),
    ],
)
def test_a_number_the_library_cannot_parse_is_explained_in_plain_words(
    raw: str, region: str | None, says: str
) -> None:
    # It used to pass on the library's own "(1) The string supplied did not seem to be …".
    with pytest.raises(InvalidPhoneNumber) as refused:
        parse_phone(raw, region)
    assert says in str(refused.value) and "(1)" not in str(refused.value)
