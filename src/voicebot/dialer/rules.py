"""A campaign row's settings as the rules the compliance gate and the retry policy apply."""

from __future__ import annotations

from voicebot.db.models import Campaign
from voicebot.domain.campaigns import campaign_rules
from voicebot.domain.compliance import ComplianceRules
from voicebot.domain.retry import RetryRules


def rules_for(campaign: Campaign) -> tuple[ComplianceRules, RetryRules]:
    """Raises ValueError if the stored settings are ones the API would have refused."""
    rules = campaign_rules(
        window_start=campaign.window_start,
        window_end=campaign.window_end,
        weekdays=frozenset(campaign.window_weekdays),
        max_attempts_per_period=campaign.max_attempts_per_period,
        attempt_period_days=campaign.attempt_period_days,
        max_conversations_per_day=campaign.max_conversations_per_day,
        quiet_period_hours=campaign.quiet_period_hours,
        max_attempts=campaign.max_attempts,
        retry_delays=campaign.retry_delays or {},
        switch_number_after=campaign.switch_number_after,
    )
    return rules.compliance, rules.retry
