"""The HTTP surface: operations API (/v1), Twilio webhooks, and (later) the media websocket."""
