"""Calendar arithmetic behind relative dates ("next Friday", 月底, 15일), alike in every language.

Every function works on the borrower's local calendar date; callers convert instants first.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, tzinfo


def last_day_of_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def end_of_month(today: date, months_ahead: int = 0) -> date:
    """The last day of this month (or of the month ``months_ahead`` later)."""
    first = add_months(today.replace(day=1), months_ahead)
    return first.replace(day=last_day_of_month(first.year, first.month))


def add_months(day: date, months: int) -> date:
    """Same day number ``months`` later, clamped to the month's length (Jan 31 + 1 → Feb 28/29)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, last_day_of_month(year, month)))


def day_of_month(today: date, day: int, months_ahead: int | None = None) -> date | None:
    """The date a bare day number names: this month's if it has not passed, else next month's.

    ``months_ahead`` pins the month instead (0 = this month, 1 = next month). A day the month does
    not have (31 in April) is clamped to its last day. Days outside 1..31 name nothing.
    """
    if not 1 <= day <= 31:
        return None
    if months_ahead is None:
        months_ahead = 0 if day >= today.day else 1
    first = add_months(today.replace(day=1), months_ahead)
    return first.replace(day=min(day, last_day_of_month(first.year, first.month)))


def month_and_day(today: date, month: int, day: int, years_ahead: int | None = None) -> date | None:
    """An explicit month and day: this year's if not yet passed, else next year's."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    year = today.year + (years_ahead or 0)
    candidate = date(year, month, min(day, last_day_of_month(year, month)))
    if years_ahead is None and candidate < today:
        year += 1
        candidate = date(year, month, min(day, last_day_of_month(year, month)))
    return candidate


def weekday_date(today: date, weekday: int, weeks_ahead: int | None) -> date:
    """A weekday (0 = Monday) in a week relative to today's.

    ``weeks_ahead=None`` is a bare weekday ("Friday", 周五): the next one, today included.
    ``weeks_ahead=0`` is "this Friday": the one in this Monday-to-Sunday week, or the next one if it
    has passed. ``weeks_ahead=1`` is "next Friday" (下周五, 다음 주 금요일): the one in next week.
    """
    if weeks_ahead is None or (weeks_ahead == 0 and weekday < today.weekday()):
        return today + timedelta(days=(weekday - today.weekday()) % 7)
    monday = today - timedelta(days=today.weekday())
    return monday + timedelta(weeks=weeks_ahead, days=weekday)


def at_local(day: date, wall: time, zone: tzinfo) -> datetime:
    """The aware local datetime of a wall-clock time; in a DST gap the later reading is taken."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    return max(first, second, key=lambda moment: moment.timestamp())
