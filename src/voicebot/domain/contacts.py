"""Contact uploads: decoding a CSV or JSON file into rows and validating each row into a contact.

Row numbers point the uploader at the bad line: in a CSV file the line number in the file (the
header is line 1; a record spanning lines is numbered by its first line); in a JSON upload the
0-based index in ``contacts``. Phone numbers are never echoed back in errors: a field and a
position say which one is wrong.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Literal

import phonenumbers
from phonenumbers import timezone as phone_timezones
from phonenumbers.tzdata import TIMEZONE_DATA

from voicebot.domain.phones import (
    InvalidPhoneNumber,
    PhoneNumber,
    UnknownTimeZone,
    check_time_zone,
    parse_phone,
    time_zone_for,
)

UploadFormat = Literal["csv", "json"]

CONTACT_FIELDS = (
    "external_id",
    "name",
    "phone",
    "alternate_phones",
    "time_zone",
    "loan_id",
    "amount_due",
    "currency",
    "due_date",
    "days_past_due",
)
REQUIRED_FIELDS = ("external_id", "name", "phone")

MAX_EXTERNAL_ID = 128
MAX_NAME = 200
MAX_LOAN_ID = 128
MAX_DAYS_PAST_DUE = 100_000
MAX_ALTERNATE_PHONES = 9
# contacts.amount_due is NUMERIC(14, 2).
_MAX_AMOUNT = Decimal("1e12")
_CENT = Decimal("0.01")
_CURRENCY = re.compile(r"[A-Z]{3}")
_DIGITS = re.compile(r"\s*\d{1,9}\s*")

# Free-form fields are kept as JSON: a value may nest lists and objects this deep (an address
# with its lines is 2), and its numbers must fit where every JSON reader agrees (RFC 8259 §6:
# integers up to 2**53 - 1 are exact everywhere). Beyond these the database refuses the row
# (inf, huge numbers) or Python's recursion does, as a 500 instead of an answer.
MAX_FIELD_DEPTH = 10
MAX_FIELD_NUMBER = 2**53 - 1
# PostgreSQL stores no NUL in text or JSON, and a lone surrogate (a JSON "\ud800" escape) is not
# Unicode at all: neither database driver nor the JSON answers can encode it.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

_UTF8_BOM = codecs.BOM_UTF8
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


class ContactFileError(ValueError):
    """The upload cannot be read at all (encoding, CSV syntax, columns, JSON shape): no row of it
    is trusted. ``code`` is machine-readable; ``details`` locate the problem."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class UnsupportedCharset(ContactFileError):
    pass


class TooManyRows(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload has more than {limit} rows")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str | None  # None: the row as a whole (e.g. the wrong number of CSV cells)
    reason: str


@dataclass(frozen=True, slots=True)
class ContactRow:
    """One valid contact, normalised: numbers in E.164 (primary first), a known IANA zone."""

    row: int
    external_id: str
    name: str
    phones: tuple[str, ...]
    time_zone: str
    loan_id: str | None = None
    amount_due: Decimal | None = None
    currency: str | None = None
    due_date: date | None = None
    days_past_due: int | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: _NO_FIELDS)


@dataclass(frozen=True, slots=True)
class RawRow:
    row: int
    values: Mapping[str, Any]
    problem: str | None = None  # set when the row cannot be read into values at all


@dataclass(frozen=True, slots=True)
class ValidatedUpload:
    received: int
    contacts: list[ContactRow]
    errors: list[RowError]

    @property
    def rejected(self) -> int:
        """How many rows had at least one error."""
        return len({e.row for e in self.errors})


# -- decoding ---------------------------------------------------------------------------------


def decode_upload(data: bytes, charset: str | None) -> str:
    """The upload as text: in ``charset`` when the request names one, else UTF-8 (with or without
    a BOM), UTF-16 with a BOM (Excel's "Unicode text"), else GB18030 (a superset of GBK, what
    Chinese spreadsheets save) when the text it gives is plausible.

    GB18030 decodes almost any bytes, so it is the last resort and checked: Western text read
    as GB18030 shows a Chinese character in the middle of a Latin word ("Renée" in
    Windows-1252 reads "Ren閑"), which real Chinese text does not; such a file is refused
    rather than stored as mojibake. UTF-16 without a BOM (its NUL bytes give it away) is
    refused naming the charset to declare: its byte order is a guess."""
    if charset is not None:
        try:
            codec = codecs.lookup(charset).name
        except LookupError:
            raise UnsupportedCharset(
                "unsupported_charset", f"unknown charset {charset!r}", charset=charset
            ) from None
        return _decode_or_explain(data, codec)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode_or_explain(data, "utf-16")
    _refuse_utf16_without_bom(data)
    try:
        return _decode(data, "utf-8")
    except UnicodeDecodeError as utf8_error:
        try:
            text = _decode(data, "gb18030")
        except UnicodeDecodeError as gb_error:
            utf8_at = _offset(data, utf8_error)
            gb_at = _offset(data, gb_error)
            raise ContactFileError(
                "invalid_encoding",
                "the file is neither UTF-8 nor GB18030/GBK: "
                f"byte 0x{data[utf8_at]:02x} at offset {utf8_at} (line {_line_of(data, utf8_at)})"
                f" is not UTF-8, and byte 0x{data[gb_at]:02x} at offset {gb_at} "
                f"(line {_line_of(data, gb_at)}) is not GB18030. {_DECLARE_CHARSET}",
                offset=utf8_at,
                line=_line_of(data, utf8_at),
                encodings_tried=["utf-8", "gb18030"],
            ) from None
        _refuse_latin_read_as_chinese(text, data, _offset(data, utf8_error))
        return text


_DECLARE_CHARSET = (
    'Save it as "CSV UTF-8", or name its encoding in the Content-Type '
    "(e.g. text/csv; charset=windows-1252)."
)
# A non-ASCII character touching an ASCII letter: where Latin text misread as GB18030 shows.
_NEXT_TO_LATIN = re.compile(r"(?<=[A-Za-z])[^\x00-\x7f]|[^\x00-\x7f](?=[A-Za-z])")


def _refuse_latin_read_as_chinese(text: str, data: bytes, utf8_at: int) -> None:
    """Refuse GB18030 text whose Chinese character ends in an ASCII letter's byte and touches a
    Latin letter: a Western accented letter that swallowed the letter after it ("é" + "e" →
    "閑"). Characters with such a second byte are rare ones outside GB2312, and next to a Latin
    letter rarer still; a genuine GBK file shows none of this."""
    for match in _NEXT_TO_LATIN.finditer(text):
        encoded = match.group().encode("gb18030")
        if len(encoded) == 2 and chr(encoded[1]).isascii() and chr(encoded[1]).isalpha():
            line = text.count("\n", 0, match.start()) + 1
            raise ContactFileError(
                "invalid_encoding",
                f"the file is not UTF-8 (byte 0x{data[utf8_at]:02x} at offset {utf8_at}), and "
                f"read as GB18030 line {line} has {match.group()!r} (bytes {encoded.hex(' ')}) "
                "inside a Latin word: it looks like a Western encoding such as Windows-1252. "
                + _DECLARE_CHARSET,
                offset=utf8_at,
                line=line,
                encodings_tried=["utf-8", "gb18030"],
            )


def _refuse_utf16_without_bom(data: bytes) -> None:
    """A text file in UTF-8 or GB18030 has no NUL bytes; UTF-16 has one in every ASCII
    character, all on the same side of each pair (odd offsets: little-endian)."""
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs < 2 or b"\x00" not in sample:
        return
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if max(even, odd) < pairs // 3 or min(even, odd) * 4 > max(even, odd):
        return
    codec = "utf-16-le" if odd > even else "utf-16-be"
    raise ContactFileError(
        "invalid_encoding",
        f"the file looks like {codec.upper()} without a byte-order mark (a NUL byte in every "
        f'other byte): save it as "CSV UTF-8", or send Content-Type: text/csv; charset={codec}',
        offset=0,
        line=1,
        encodings_tried=["utf-16"],
    )


def charset_of(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header, if it names one."""
    _, _, parameters = (content_type or "").partition(";")
    charset: str | None = None
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return charset


def _decode_or_explain(data: bytes, codec: str) -> str:
    try:
        return _decode(data, codec)
    except UnicodeDecodeError as exc:
        at = _offset(data, exc)
        raise ContactFileError(
            "invalid_encoding",
            f"the file is not valid {codec}: byte 0x{data[at]:02x} at offset {at} "
            f"(line {_line_of(data, at)}) cannot be decoded",
            offset=at,
            line=_line_of(data, at),
            encodings_tried=[codec],
        ) from None
    except LookupError:
        # codecs.lookup also finds bytes-to-bytes codecs (base64, zlib …) that cannot decode text.
        raise UnsupportedCharset(
            "unsupported_charset", f"{codec!r} is not a text encoding", charset=codec
        ) from None


def _decode(data: bytes, codec: str) -> str:
    # The BOM is stripped by hand so error offsets stay offsets into the file as sent.
    if codec == "utf-8" and data.startswith(_UTF8_BOM):
        try:
            return data[len(_UTF8_BOM) :].decode("utf-8")
        except UnicodeDecodeError as exc:
            exc.start += len(_UTF8_BOM)
            raise
    text = data.decode(codec)
    return text[1:] if text.startswith("\ufeff") else text


def _offset(data: bytes, exc: UnicodeDecodeError) -> int:
    return min(exc.start, len(data) - 1)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


# -- reading rows ---------------------------------------------------------------------------


def read_csv(text: str, *, max_rows: int) -> Iterator[RawRow]:
    """Rows of a CSV file with a header line, lazily. Blank lines and rows of empty cells are
    skipped; extra columns become free-form fields; ``alternate_phones`` is ``;``-separated."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = _read_header(reader)
    width = len(header)
    rows = 0
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ContactFileError(
                "malformed_csv", f"line {line}: {exc}; the file cannot be read past it", line=line
            ) from None
        if not any(cell.strip() for cell in cells):
            continue
        rows += 1
        if rows > max_rows:
            raise TooManyRows(max_rows)
        if len(cells) != width:
            problem = f"expected {width} cells as in the header, found {len(cells)}"
            yield RawRow(line, _NO_FIELDS, problem)
            continue
        yield RawRow(line, {name: cell for name, cell in zip(header, cells, strict=True) if cell})


def _read_header(reader: Any) -> list[str]:
    while True:
        try:
            cells: list[str] = next(reader)
        except StopIteration:
            raise ContactFileError("empty_file", "the file has no header line") from None
        except csv.Error as exc:
            raise ContactFileError(
                "malformed_csv", f"line {reader.line_num}: {exc}", line=reader.line_num
            ) from None
        if any(cell.strip() for cell in cells):
            break
    header: list[str] = []
    for position, cell in enumerate(cells, start=1):
        name = cell.strip()
        if name.lower() in CONTACT_FIELDS:
            name = name.lower()
        if not name:
            raise ContactFileError(
                "invalid_columns", f"column {position} of the header has no name", column=position
            )
        if name in header:
            raise ContactFileError(
                "invalid_columns", f"column {name!r} appears twice in the header", column=position
            )
        header.append(name)
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if missing:
        raise ContactFileError(
            "invalid_columns",
            f"the header lacks required columns: {', '.join(missing)}",
            missing=missing,
            columns=header,
        )
    return header


def read_json(text: str, *, max_rows: int) -> list[RawRow]:
    """Rows of ``{"contacts": [{...}, ...]}``; numbers with a fraction are read as Decimal."""
    try:
        document = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ContactFileError(
            "invalid_json", f"not valid JSON: {exc}", line=exc.lineno, column=exc.colno
        ) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ContactFileError("invalid_json", f"not valid JSON: {exc}") from None
    except RecursionError:
        line, column = _too_deep_at(text)
        raise ContactFileError(
            "invalid_json",
            f"not valid JSON: lists or objects nested too deeply (line {line}, column {column});"
            f" a field may nest {MAX_FIELD_DEPTH} levels at most",
            line=line,
            column=column,
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("contacts"), list):
        raise ContactFileError(
            "invalid_body", 'the body must be a JSON object {"contacts": [ {...}, ... ]}'
        )
    items: list[Any] = document["contacts"]
    if len(items) > max_rows:
        raise TooManyRows(max_rows)
    return [
        RawRow(index, item)
        if isinstance(item, dict)
        else RawRow(index, _NO_FIELDS, "each contact must be a JSON object")
        for index, item in enumerate(items)
    ]


# -- validating -------------------------------------------------------------------------------


def read_upload(
    data: bytes, *, upload_format: UploadFormat, charset: str | None, max_rows: int
) -> Iterable[RawRow]:
    """Decode an upload and read its rows (a CSV file lazily, row by row). Raises
    ContactFileError when the file cannot be read, TooManyRows past ``max_rows``."""
    text = decode_upload(data, charset)
    if upload_format == "csv":
        return read_csv(text, max_rows=max_rows)
    return read_json(text, max_rows=max_rows)


# What a campaign asks of each valid contact beyond this module's rules (the fields its dialog
# needs): (field, reason) pairs, none when the contact will do.
ContactCheck = Callable[[ContactRow], Iterable[tuple[str, str]]]


def validate_rows(
    rows: Iterable[RawRow], *, default_region: str | None, check: ContactCheck | None = None
) -> ValidatedUpload:
    """Validate every row, and a valid one with ``check`` too; an ``external_id`` seen in an
    earlier row is an error of the later one. Only valid contacts and errors are kept, not the
    rows read."""
    contacts: list[ContactRow] = []
    errors: list[RowError] = []
    first_seen: dict[str, int] = {}
    received = 0
    for raw in rows:
        received += 1
        if raw.problem is not None:
            errors.append(RowError(raw.row, None, raw.problem))
            continue
        result = validate_contact(raw.values, row=raw.row, default_region=default_region)
        if isinstance(result, list):
            errors.extend(result)
            continue
        if check is not None:
            failed = [RowError(result.row, name, reason) for name, reason in check(result)]
            if failed:
                errors.extend(failed)
                continue
        earlier = first_seen.setdefault(result.external_id, result.row)
        if earlier != result.row:
            errors.append(
                RowError(result.row, "external_id", f"duplicate external_id: also in row {earlier}")
            )
            continue
        contacts.append(result)
    return ValidatedUpload(received=received, contacts=contacts, errors=errors)


def parse_upload(
    data: bytes,
    *,
    upload_format: UploadFormat,
    charset: str | None,
    default_region: str | None,
    max_rows: int,
    check: ContactCheck | None = None,
) -> ValidatedUpload:
    """Decode, read and validate a whole upload; bad rows are reported in the result, files
    that cannot be read raise (see ``read_upload``). CPU-bound: run it off the event loop."""
    rows = read_upload(data, upload_format=upload_format, charset=charset, max_rows=max_rows)
    return validate_rows(rows, default_region=default_region, check=check)


def check_region(code: str) -> str:
    """An ISO 3166 region code phonenumbers knows (``cn`` → ``CN``), for national numbers."""
    region = code.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {code!r}: use an ISO 3166 code such as CN or US")
    return region


def validate_contact(
    values: Mapping[str, Any], *, row: int, default_region: str | None
) -> ContactRow | list[RowError]:
    """One row's values (strings from CSV, JSON values from JSON) as a contact, or its errors."""
    check = _RowCheck(row)
    external_id = check.text(values, "external_id", MAX_EXTERNAL_ID, required=True)
    name = check.text(values, "name", MAX_NAME, required=True)
    numbers = check.phones(values, default_region)
    time_zone = check.time_zone(values, numbers[0] if numbers else None)
    loan_id = check.text(values, "loan_id", MAX_LOAN_ID)
    amount_due = check.amount(values, "amount_due")
    currency = check.currency(values, "currency")
    due_date = check.date(values, "due_date")
    days_past_due = check.count(values, "days_past_due", MAX_DAYS_PAST_DUE)
    fields = check.extra_fields(values)
    if check.errors:
        return check.errors
    assert external_id is not None and name is not None and time_zone is not None
    return ContactRow(
        row=row,
        external_id=external_id,
        name=name,
        phones=tuple(n.e164 for n in numbers),
        time_zone=time_zone,
        loan_id=loan_id,
        amount_due=amount_due,
        currency=currency,
        due_date=due_date,
        days_past_due=days_past_due,
        fields=fields,
    )


class _RowCheck:
    """Collects a row's errors field by field, so every problem of a row is reported at once."""

    def __init__(self, row: int) -> None:
        self.row = row
        self.errors: list[RowError] = []

    def fail(self, name: str, reason: str) -> None:
        self.errors.append(RowError(self.row, name, reason))

    def scalar(self, values: Mapping[str, Any], name: str) -> str | None:
        """A value as stripped text; None when absent or empty. Integers read as their digits."""
        value = values.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            self.fail(name, f"must be a string, not {_json_type(value)}")
            return None
        text = str(value).strip()
        problem = _text_problem(text)
        if problem is not None:
            self.fail(name, problem)
            return None
        return text or None

    def text(
        self, values: Mapping[str, Any], name: str, max_length: int, *, required: bool = False
    ) -> str | None:
        before = len(self.errors)
        value = self.scalar(values, name)
        if value is None:
            if required and len(self.errors) == before:
                self.fail(name, "required")
            return None
        if len(value) > max_length:
            self.fail(name, f"longer than {max_length} characters")
            return None
        return value

    def phones(self, values: Mapping[str, Any], region: str | None) -> list[PhoneNumber]:
        numbers: list[PhoneNumber] = []
        before = len(self.errors)
        primary = self.scalar(values, "phone")
        if primary is None:
            if len(self.errors) == before:
                self.fail("phone", "required")
        else:
            number = self.phone(primary, "phone", region)
            if number is not None:
                numbers.append(number)
        alternates = self.alternates(values)
        if len(alternates) > MAX_ALTERNATE_PHONES:
            self.fail("alternate_phones", f"at most {MAX_ALTERNATE_PHONES} alternate numbers")
            return numbers
        seen = {n.e164: "phone" for n in numbers}
        for position, raw in enumerate(alternates, start=1):
            label = f"alternate_phones[{position}]"
            number = self.phone(raw, label, region)
            if number is None:
                continue
            if number.e164 in seen:
                self.fail(label, f"the same number as {seen[number.e164]}")
                continue
            seen[number.e164] = label
            numbers.append(number)
        return numbers

    def alternates(self, values: Mapping[str, Any]) -> list[str]:
        value = values.get("alternate_phones")
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(";") if part.strip()]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return [item.strip() for item in value if item.strip()]
        self.fail("alternate_phones", 'must be a list of strings or a ";"-separated string')
        return []

    def phone(self, raw: str, label: str, region: str | None) -> PhoneNumber | None:
        try:
            return parse_phone(raw, region)
        except InvalidPhoneNumber as exc:
            if region is None and not raw.startswith(("+", "00")):
                self.fail(
                    label,
                    "a national number without a country code: write it as +<country code>… "
                    "or pass default_region (e.g. CN)",
                )
            else:
                self.fail(label, str(exc))
            return None

    def time_zone(self, values: Mapping[str, Any], primary: PhoneNumber | None) -> str | None:
        before = len(self.errors)
        name = self.scalar(values, "time_zone")
        if name is not None:
            try:
                return check_time_zone(name)
            except UnknownTimeZone as exc:
                self.fail("time_zone", str(exc))
                return None
        if len(self.errors) != before or primary is None:
            return None
        return _zone_of(primary)

    def amount(self, values: Mapping[str, Any], name: str) -> Decimal | None:
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        # A float is JSON's NaN or Infinity (other numbers are read as Decimal): refused below.
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            self.fail(name, f"must be a number, not {_json_type(value)}")
            return None
        try:
            amount = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            self.fail(name, "not a decimal number")
            return None
        if not amount.is_finite() or amount < 0:
            self.fail(name, "must be a finite number ≥ 0")
        elif amount >= _MAX_AMOUNT:
            self.fail(name, f"must be less than {_MAX_AMOUNT:,.0f}")
        elif amount != amount.quantize(_CENT):
            self.fail(name, "at most 2 decimal places")
        else:
            return amount.quantize(_CENT)
        return None

    def currency(self, values: Mapping[str, Any], name: str) -> str | None:
        value = self.scalar(values, name)
        if value is None:
            return None
        code = value.upper()
        if not _CURRENCY.fullmatch(code):
            self.fail(name, "must be a 3-letter ISO 4217 code such as CNY or USD")
            return None
        return code

    def date(self, values: Mapping[str, Any], name: str) -> date | None:
        value = values.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.fail(name, f"must be an ISO date string (YYYY-MM-DD), not {_json_type(value)}")
            return None
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            self.fail(name, "not an ISO date (YYYY-MM-DD)")
            return None

    def count(self, values: Mapping[str, Any], name: str, maximum: int) -> int | None:
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif _is_whole(value):
            number = int(value)
        if number is None:
            self.fail(name, "must be a whole number")
        elif not 0 <= number <= maximum:
            self.fail(name, f"must be between 0 and {maximum}")
        else:
            return number
        return None

    def extra_fields(self, values: Mapping[str, Any]) -> Mapping[str, Any]:
        extra: dict[str, Any] = {}
        for key, value in values.items():
            if key in CONTACT_FIELDS:
                continue
            problem = _text_problem(key) or _value_problem(value)
            if problem is not None:
                self.fail(_printable(key), problem)
            elif key == "fields" and isinstance(value, dict):
                extra.update({str(k): _plain(v) for k, v in value.items()})
            else:
                extra[key] = _plain(value)
        return extra or _NO_FIELDS


def _text_problem(text: str) -> str | None:
    """Why a string cannot be stored, or None."""
    bad = _UNSTORABLE.search(text)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return "contains a NUL character"
    return "is not valid Unicode (a lone surrogate such as \\ud800)"


def _value_problem(value: Any) -> str | None:
    """Why a JSON value (as ``read_json`` or a CSV cell gives it) cannot be kept in ``fields``,
    or None. Walked with a stack, not recursion, so depth is measured before it can hurt."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem is not None:
                return problem
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int | float | Decimal):
            if not _storable_number(item):
                return (
                    "numbers must be finite and at most "
                    f"{MAX_FIELD_NUMBER} in size; send others as strings"
                )
        elif isinstance(item, dict | list):
            if depth == MAX_FIELD_DEPTH:
                return f"nested more than {MAX_FIELD_DEPTH} lists or objects deep"
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    problem = _text_problem(key)
                    if problem is not None:
                        return problem
                pending.append((child, depth + 1))
    return None


def _storable_number(number: int | float | Decimal) -> bool:
    if isinstance(number, Decimal):
        return number.is_finite() and abs(number) <= MAX_FIELD_NUMBER
    return math.isfinite(number) and abs(number) <= MAX_FIELD_NUMBER


def _printable(key: str) -> str:
    """A key safe to echo in an error: lone surrogates escaped, as the answer cannot carry them."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _too_deep_at(text: str) -> tuple[int, int]:
    """(line, column) where the JSON ``text`` first nests deeper than a field may: where to look
    once ``json.loads`` has given up on the depth. Only run then, so only a bad upload pays."""
    # The body's object, its contacts list and the contact's object hold every field value.
    limit = MAX_FIELD_DEPTH + 3
    depth = 0
    in_string = escaped = False
    for offset, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                line = text.count("\n", 0, offset) + 1
                return line, offset - text.rfind("\n", 0, offset)
        elif char in "]}":
            depth -= 1
    return 1, 1


def _plain(value: Any) -> Any:
    """JSON values as the JSON column stores them: exact decimals become floats again."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _is_whole(value: Any) -> bool:
    """A JSON number without a fraction (``3.0``), or digits in a CSV cell."""
    if isinstance(value, Decimal):
        return value.is_finite() and value == value.to_integral_value()
    return isinstance(value, str) and _DIGITS.fullmatch(value) is not None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _zone_of(number: PhoneNumber) -> str:
    """``time_zone_for``, with a shortcut for countries whose every number has one zone (China,
    Korea, …): the per-number lookup re-parses the number and dominates a large import."""
    if number.region is not None:
        single = _single_zone(phonenumbers.country_code_for_region(number.region))
        if single is not None:
            return single
    return time_zone_for(number)


@functools.cache
def _single_zone(country_code: int) -> str | None:
    prefix = str(country_code)
    data: Mapping[str, Sequence[str]] = TIMEZONE_DATA
    if prefix not in data:
        return None
    zones = {tuple(zones) for key, zones in data.items() if key.startswith(prefix)}
    if len(zones) != 1:
        return None
    (only,) = zones
    if len(only) != 1 or only[0] == phone_timezones.UNKNOWN_TIMEZONE:
        return None
    return only[0]
