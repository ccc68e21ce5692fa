"""X-Twilio-Signature: Twilio's own test vector, forgeries, and the public-URL rule."""

from __future__ import annotations

import pytest

from voicebot.telephony.signatures import FormParams, TwilioSignature, public_url

# The example from Twilio's documentation and twilio-python's own tests.
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_sign_matches_twilios_published_example() -> None:
    assert TwilioSignature(TOKEN).sign(URL, PARAMS) == EXPECTED


def test_a_valid_signature_verifies() -> None:
    assert TwilioSignature(TOKEN).verify(URL, PARAMS, EXPECTED)


@pytest.mark.parametrize("signature", [None, ""])
def test_a_missing_signature_never_verifies(signature: str | None) -> None:
    assert not TwilioSignature(TOKEN).verify(URL, PARAMS, signature)


def test_a_signature_made_with_another_token_is_refused() -> None:
    forged = TwilioSignature("not-the-token").sign(URL, PARAMS)
    assert not TwilioSignature(TOKEN).verify(URL, PARAMS, forged)


def test_a_changed_field_breaks_the_signature() -> None:
    tampered = {**PARAMS, "Digits": "9999"}
    assert not TwilioSignature(TOKEN).verify(URL, tampered, EXPECTED)


def test_an_added_field_breaks_the_signature() -> None:
    assert not TwilioSignature(TOKEN).verify(URL, {**PARAMS, "CallStatus": "completed"}, EXPECTED)


def test_a_changed_query_breaks_the_signature() -> None:
    other = "https://mycompany.com/myapp.php?foo=1&bar=3"
    assert not TwilioSignature(TOKEN).verify(other, PARAMS, EXPECTED)


def test_the_default_https_port_is_accepted_either_way() -> None:
    signer = TwilioSignature(TOKEN)
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert signer.verify(with_port, PARAMS, EXPECTED)
    assert signer.verify(URL, PARAMS, signer.sign(with_port, PARAMS))


def test_repeated_fields_are_all_signed() -> None:
    signer = TwilioSignature(TOKEN)
    both = FormParams([("Event", "a"), ("Event", "b"), ("CallSid", "CA1")])
    only_one = FormParams([("Event", "a"), ("CallSid", "CA1")])
    signature = signer.sign(URL, both)
    assert signer.verify(URL, both, signature)
    assert not signer.verify(URL, only_one, signature)


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="auth token"):
        TwilioSignature("")


class TestPublicUrl:
    def test_joins_base_path_and_query(self) -> None:
        url = public_url("https://bot.example.com", "/webhooks/twilio/status", "call_id=7")
        assert url == "https://bot.example.com/webhooks/twilio/status?call_id=7"

    def test_without_query_has_no_question_mark(self) -> None:
        assert public_url("https://bot.example.com/", "/x") == "https://bot.example.com/x"

    def test_keeps_a_path_prefix_of_the_public_base(self) -> None:
        url = public_url("https://example.com/voicebot", "webhooks/twilio/status", "a=1&b=2")
        assert url == "https://example.com/voicebot/webhooks/twilio/status?a=1&b=2"

    def test_behind_a_proxy_the_public_url_verifies_and_the_local_one_does_not(self) -> None:
        # Twilio signed the public URL; the service itself is reached on a local address.
        signer = TwilioSignature(TOKEN)
        public = public_url("https://bot.example.com", "/webhooks/twilio/status", "call_id=7")
        local = "http://127.0.0.1:8000/webhooks/twilio/status?call_id=7"
        signature = signer.sign(public, PARAMS)
        assert signer.verify(public, PARAMS, signature)
        assert not signer.verify(local, PARAMS, signature)
