"""The service's Prometheus metrics. Every process has its own; Prometheus sums them.

Parts of the system record into these with one call each (``CALLS_DIALED.inc()``); the
``/metrics`` route renders them, with the gauges read from the database at scrape time.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALL_STATUS_EVENTS = Counter(
    "voicebot_call_status_events_total",
    "Carrier status events applied to a call, by the status they report",
    ["status"],
)
CALLS_ENDED = Counter(
    "voicebot_calls_ended_total", "Calls that reached a final status, by disposition", ["status"]
)
CALLS_DIALED = Counter(
    "voicebot_calls_dialed_total", "Dial requests the carrier accepted (rate() is the dial rate)"
)
LIVE_CALLS = Gauge("voicebot_live_calls", "Calls dialed and not yet ended, across all campaigns")
CALLS_BY_STATUS = Gauge(
    "voicebot_calls_active", "Calls not yet ended, by their current status", ["status"]
)
TURN_LATENCY = Histogram(
    "voicebot_turn_latency_seconds",
    "From the end of the borrower's utterance to the bot's first audio of its reply",
    buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
)
RECOGNITION_RTF = Histogram(
    "voicebot_recognition_real_time_factor",
    "Seconds of recogniser work per second of audio recognised",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0),
)
WEBHOOK_SECONDS = Histogram(
    "voicebot_webhook_seconds",
    "Time to handle a carrier webhook, by route and response status",
    ["route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
NOTIFICATION_SECONDS = Histogram(
    "voicebot_notification_delivery_seconds",
    "Time for a notification endpoint to answer a delivery, by outcome",
    ["result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
NOTIFICATIONS_PENDING = Gauge(
    "voicebot_notifications_pending", "Notification deliveries not yet made"
)
NOTIFICATIONS_GIVEN_UP = Counter(
    "voicebot_notifications_given_up_total",
    "Notification deliveries given up on after failing for the give-up window (alert on its "
    "increase: the endpoint has not had them; an admin can send them again)",
)
