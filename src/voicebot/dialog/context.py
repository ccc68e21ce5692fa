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


def context_for(script: DialogScript, contact: Mapping[str, Any]) -> CallContext:
    """Build a call's context from a contact as JSON: top-level keys, plus those under ``fields``.

    ``time_zone`` and ``currency`` default to the script's language zone and currency. Fields
    the script does not declare are ignored; missing required ones raise ContactDataError.
    """
    flat: dict[str, Any] = dict(contact.get("fields") or {})
    flat.update({key: value for key, value in contact.items() if key != "fields"})
    problems: list[str] = []
    values: dict[str, FieldValue] = {}
    for name, spec in script.fields.items():
        raw = flat.get(name)
        if raw is None or raw == "":
            if spec.required:
                problems.append(f"missing field {name!r}")
            continue
        try:
            values[name] = _convert(raw, spec)
        except (ValueError, InvalidOperation, TypeError) as exc:
            problems.append(f"field {name!r}: {exc}")
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


def _convert(raw: Any, spec: FieldSpec) -> FieldValue:
    if spec.type == "amount":
        if isinstance(raw, float):
            raw = repr(raw)
        amount = Decimal(str(raw))
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
