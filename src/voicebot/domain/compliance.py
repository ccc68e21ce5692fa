"""The compliance gate: may this borrower be called now, and if not, from when?

Hard rules from the product brief (Regulation F in the US, GB/T 45251-2025 in China), all
configurable per campaign:

- calling hours in the borrower's *local* time (default 08:00-21:00; a window may cross midnight);
- at most N call attempts per loan in a rolling period (default 7 in 7 days);
- at most N connected conversations per borrower per local day (default 3);
- an optional quiet period after a conversation (Regulation F's 7 days, off by default);
- opted-out numbers are never called.

A call-back that fails the gate is deferred to the first instant every rule allows, never dropped.
Daylight-saving transitions are handled conservatively: a window boundary that falls in a gap or an
overlap of the wall clock is read so the window is never wider than written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ALL_WEEKDAYS = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Allowed local hours; ``start == end`` means all day. Weekdays are 0=Monday … 6=Sunday and
    name the day a window opens on (a 20:00-02:00 window opened on Friday runs into Saturday)."""

    start: time = time(8, 0)
    end: time = time(21, 0)
    weekdays: frozenset[int] = ALL_WEEKDAYS

    def __post_init__(self) -> None:
        if not self.weekdays or not self.weekdays <= ALL_WEEKDAYS:
            raise ValueError("weekdays must be a non-empty subset of 0..6 (Monday=0)")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def _segment(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The UTC interval of the window that opens on local ``day``."""
        opens = _instant(day, self.start, tz, late=True)
        closes_day = day + timedelta(days=1) if self.crosses_midnight else day
        closes = _instant(closes_day, self.end, tz, late=False)
        return opens, closes

    def next_open(self, now: datetime, tz: ZoneInfo) -> datetime:
        """``now`` if the window is open at ``now``, else the instant it next opens (UTC)."""
        _require_utc(now)
        today = now.astimezone(tz).date()
        for offset in range(-1, 9):
            day = today + timedelta(days=offset)
            if day.weekday() not in self.weekdays:
                continue
            opens, closes = self._segment(day, tz)
            if closes <= now:
                continue
            return max(opens, now)
        raise AssertionError("a window with at least one weekday opens within 8 days")

    def is_open(self, now: datetime, tz: ZoneInfo) -> bool:
        return self.next_open(now, tz) == now


def _instant(day: date, wall: time, tz: ZoneInfo, *, late: bool) -> datetime:
    """The UTC instant of a wall-clock time on a local day.

    In a DST gap or overlap the wall time has two readings; ``late`` picks the later one (for a
    window's opening), otherwise the earlier one (for its closing), so the window only shrinks.
    """
    naive = datetime.combine(day, wall)
    readings = (
        naive.replace(tzinfo=tz, fold=0).astimezone(UTC),
        naive.replace(tzinfo=tz, fold=1).astimezone(UTC),
    )
    return max(readings) if late else min(readings)


def _require_utc(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() != timedelta(0):
        raise ValueError("times passed to the compliance gate must be timezone-aware UTC")


@dataclass(frozen=True, slots=True)
class ComplianceRules:
    window: CallingWindow = field(default_factory=CallingWindow)
    max_attempts_per_period: int = 7
    attempt_period: timedelta = timedelta(days=7)
    max_conversations_per_day: int = 3
    quiet_period: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.max_attempts_per_period < 1 or self.max_conversations_per_day < 1:
            raise ValueError("call caps must allow at least one call")
        if self.attempt_period <= timedelta(0) or self.quiet_period < timedelta(0):
            raise ValueError("attempt_period must be positive and quiet_period not negative")


@dataclass(frozen=True, slots=True)
class DialHistory:
    """What the gate needs to know of the past, as UTC instants.

    ``attempts``: calls placed for this loan (any campaign) within the last attempt period.
    ``conversations``: connected conversations with this borrower, recent enough to matter.
    """

    attempts: Sequence[datetime] = ()
    conversations: Sequence[datetime] = ()


@dataclass(frozen=True, slots=True)
class Allow:
    pass


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """Never dial this call-back (the number opted out)."""

    reason: str


Decision = Allow | Defer | Refuse


def check(
    rules: ComplianceRules,
    *,
    now: datetime,
    tz: ZoneInfo,
    history: DialHistory,
    opted_out: bool = False,
) -> Decision:
    """Decide whether a call may be placed at ``now``; pure and deterministic."""
    _require_utc(now)
    if opted_out:
        return Refuse("opted_out")
    moment = now
    first_reason: str | None = None
    # Each rule can only push the moment later; iterate until no rule moves it.
    for _ in range(32):
        candidate, reason = _earliest_allowed(rules, moment, tz, history)
        if candidate == moment:
            break
        first_reason = first_reason or reason
        moment = candidate
    else:  # pragma: no cover - would need contradictory rules; guarded by __post_init__
        raise AssertionError("compliance rules did not converge")
    if moment == now:
        return Allow()
    return Defer(until=moment, reason=first_reason or "calling_window")


def _earliest_allowed(
    rules: ComplianceRules, moment: datetime, tz: ZoneInfo, history: DialHistory
) -> tuple[datetime, str]:
    opens = rules.window.next_open(moment, tz)
    if opens != moment:
        return opens, "calling_window"

    recent = sorted(a for a in history.attempts if moment - rules.attempt_period < a <= moment)
    if len(recent) >= rules.max_attempts_per_period:
        # The cap frees up when enough of the oldest attempts leave the rolling period.
        oldest_blocking = recent[len(recent) - rules.max_attempts_per_period]
        return oldest_blocking + rules.attempt_period, "attempt_cap"

    local_day = moment.astimezone(tz).date()
    today = [
        c for c in history.conversations if c <= moment and c.astimezone(tz).date() == local_day
    ]
    if len(today) >= rules.max_conversations_per_day:
        tomorrow = _instant(local_day + timedelta(days=1), time(0), tz, late=True)
        return tomorrow, "daily_conversation_cap"

    if rules.quiet_period > timedelta(0):
        past = [c for c in history.conversations if c <= moment]
        if past and max(past) + rules.quiet_period > moment:
            return max(past) + rules.quiet_period, "quiet_period"

    return moment, ""
