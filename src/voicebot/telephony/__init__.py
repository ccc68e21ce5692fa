"""Telephony: the Carrier port, the Twilio adapter, the simulated carrier, webhook signatures."""
