"""``/v1/contacts/{id}/history``: everything that happened to one borrower."""

from __future__ import annotations

from fastapi import APIRouter

from voicebot.api.auth import Analyst
from voicebot.api.calls import call_out
from voicebot.api.deps import ReadSessionDep
from voicebot.api.errors import documented, not_found
from voicebot.api.outcomes import outcome_out
from voicebot.api.result_schemas import ContactHistoryOut, HistoryCallBackOut, shown_name
from voicebot.db.promises import promise_statuses
from voicebot.db.results import contact_history

router = APIRouter(tags=["contacts"], responses=documented(401, 403))


@router.get(
    "/v1/contacts/{contact_id}/history",
    response_model=ContactHistoryOut,
    responses=documented(404),
)
async def read_history(
    contact_id: int, principal: Analyst, session: ReadSessionDep
) -> ContactHistoryOut:
    """Every call-back, call and outcome of one borrower, in every campaign, oldest first."""
    history = await contact_history(session, contact_id)
    if history is None:
        raise not_found("contact", contact_id)
    contact = history.contact
    statuses = await promise_statuses(session, [o.id for o in history.outcomes])
    return ContactHistoryOut(
        contact_id=contact.id,
        external_id=contact.external_id,
        name=shown_name(principal, contact.name) or "",
        loan_id=contact.loan_id,
        callbacks=[
            HistoryCallBackOut.model_validate(c, from_attributes=True) for c in history.callbacks
        ],
        calls=[call_out(c, contact.name, principal) for c in history.calls],
        outcomes=[
            outcome_out(o, contact.name, principal, statuses.get(o.id)) for o in history.outcomes
        ],
    )
