"""``/v1/reports``: a campaign's contact, promise, complaint and opt-out rates."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from voicebot.api.auth import Analyst
from voicebot.api.deps import ReadSessionDep
from voicebot.api.errors import documented, not_found
from voicebot.api.result_schemas import CampaignReport
from voicebot.db.reports import ReportRow, campaign_report

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=documented(401, 403))


class GroupBy(StrEnum):
    DAY = "day"


@router.get(
    "/campaigns/{campaign_id}", response_model=CampaignReport, responses=documented(404, 422)
)
async def report_campaign(
    campaign_id: int,
    _: Analyst,
    session: ReadSessionDep,
    group_by: Annotated[GroupBy | None, Query(description="Also one row per UTC day")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Calls placed at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Calls placed before")] = None,
) -> dict[str, Any]:
    """Rates are null when their denominator is zero (see each field for its definition)."""
    report = await campaign_report(
        session, campaign_id, since=since, until=until, by_day=group_by is GroupBy.DAY
    )
    if report is None:
        raise not_found("campaign", campaign_id)
    # Plain dicts, validated and written once by pydantic-core as the route returns them.
    return {
        "campaign_id": campaign_id,
        "since": since,
        "until": until,
        "totals": _metrics(report.totals),
        "days": None
        if report.days is None
        else [{"day": row.day, **_metrics(row)} for row in report.days],
    }


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _metrics(row: ReportRow) -> dict[str, Any]:
    return {
        "attempts": row.attempts,
        "contacts_attempted": row.contacts_attempted,
        "contacts_reached": row.contacts_reached,
        "right_party_contacts": row.right_party_contacts,
        "contacts_promised": row.contacts_promised,
        "contacts_complained": row.contacts_complained,
        "contacts_opted_out": row.contacts_opted_out,
        "contact_rate": _ratio(row.contacts_reached, row.contacts_attempted),
        "right_party_contact_rate": _ratio(row.right_party_contacts, row.contacts_attempted),
        "promise_rate": _ratio(row.contacts_promised, row.right_party_contacts),
        "promised_amount": {k: str(v) for k, v in sorted(row.promised_amount.items())},
        "complaint_rate": _ratio(row.contacts_complained, row.contacts_reached),
        "opt_out_rate": _ratio(row.contacts_opted_out, row.contacts_reached),
        "attempts_per_contact": _ratio(row.attempts, row.contacts_attempted),
        "average_call_seconds": (
            None if row.average_call_seconds is None else round(row.average_call_seconds, 2)
        ),
    }
