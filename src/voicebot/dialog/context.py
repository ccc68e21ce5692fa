"""Who is being called: the contact and loan values templates use, and the borrower's time zone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voicebot.dialog.languages import DEFAULT_TIME_ZONES
from voicebot.dialog.script import DialogScript, FieldSpec

FieldValue = str | Decimal | date | int


class ContactDataError(ValueError):
    """The contact lacks a field the script needs, or a value has the wrong shape."""


@dataclass(frozen=True)
class CallContext:
    """The borrower's side of a call. Relative dates are read in ``time_zone``; amounts are spoken
    and promises recorded in ``currency``."""

    fields: Mapping[str, FieldValue]
    time_zone: str
    currency: str

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """A field the script declares that a contact cannot supply."""

    name: str
    missing: bool  # else the value does not fit the field's type
    reason: str

    def __str__(self) -> str:
        return (
            f"missing field {self.name!r}"
            if self.missing
            else f"field {self.name!r}: {self.reason}"
        )


def field_problems(script: DialogScript, contact: Mapping[str, Any]) -> list[FieldProblem]:
    """Why ``context_for`` would refuse this contact's fields, field by field: what an import
    checks up front, so a call does not fail only once the borrower has answered."""
    return _fields(script, _flat(contact))[1]


def context_for(script: DialogScript, contact: Mapping[str, Any]) -> CallContext:
    """Build a call's context from a contact as JSON: top-level keys, plus those under ``fields``.

    ``time_zone`` and ``currency`` default to the script's language zone and currency. Fields
    the script does not declare are ignored; missing required ones raise ContactDataError.
    """
    flat = _flat(contact)
    values, field_errors = _fields(script, flat)
    problems = [str(problem) for problem in field_errors]
    time_zone = str(flat.get("time_zone") or DEFAULT_TIME_ZONES[script.language])
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"unknown time zone {time_zone!r}")
    currency = str(flat.get("currency") or script.currency).upper()
    if len(currency) != 3 or not currency.isalpha():
        problems.append(f"currency must be a 3-letter code, not {currency!r}")
    if problems:
        raise ContactDataError("; ".join(problems))
    return CallContext(fields=values, time_zone=time_zone, currency=currency)


def _flat(contact: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = dict(contact.get("fields") or {})
    flat.update({key: value for key, value in contact.items() if key != "fields"})
    return flat


def _fields(
    script: DialogScript, flat: Mapping[str, Any]
) -> tuple[dict[str, FieldValue], list[FieldProblem]]:
    values: dict[str, FieldValue] = {}
    problems: list[FieldProblem] = []
    for name, spec in script.fields.items():
        raw = flat.get(name)
        if raw is None or raw == "":
            if spec.required:
                problems.append(FieldProblem(name, missing=True, reason="required"))
            continue
        try:
            values[name] = _convert(raw, spec)
        except (ValueError, InvalidOperation, TypeError) as exc:
            problems.append(FieldProblem(name, missing=False, reason=str(exc)))
    return values, problems


def _convert(raw: Any, spec: FieldSpec) -> FieldValue:
    if spec.type == "amount":
        if isinstance(raw, float):
            raw = repr(raw)
        try:
            amount = Decimal(str(raw))
        except InvalidOperation:
            # Its own message is "[<class 'decimal.ConversionSyntax'>]": no help to anyone.
            raise ValueError(f"not an amount: {raw!r}") from None
        if not amount.is_finite() or amount < 0:
            raise ValueError(f"not an amount: {raw!r}")
        return amount.quantize(Decimal("0.01"))
    if spec.type == "date":
        return raw if isinstance(raw, date) else date.fromisoformat(str(raw))
    if spec.type == "number":
        if isinstance(raw, bool):
            raise ValueError(f"not a number: {raw!r}")
        return int(raw)
    if spec.type == "digits":
        text = str(raw)
        if not text.isdigit():
            raise ValueError(f"not digits: {raw!r}")
        return text
    return str(raw)
