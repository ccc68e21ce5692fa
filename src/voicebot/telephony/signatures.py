"""Twilio's X-Twilio-Signature: computed by the simulated carrier, checked by the webhooks.

Twilio signs the exact URL it was told to call (scheme, host, path and query) plus the sorted form
fields, with HMAC-SHA1 keyed by the account's auth token. Behind a proxy or a tunnel the service
sees another host and scheme than Twilio used, so the URL to check is rebuilt from the configured
public base URL, never from the request's Host header.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Mapping

from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "X-Twilio-Signature"


class FormParams:
    """Form fields in the shape RequestValidator reads: iterating gives names, ``getlist`` values.

    A field may repeat in a form post; Twilio signs every value, so all of them are kept.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> FormParams:
        return cls(fields.items())

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def getlist(self, name: str) -> list[str]:
        return list(self._values.get(name, []))


def public_url(base_url: str, path: str, query_string: str = "") -> str:
    """The URL Twilio called: the public base, the route's path inside the app, and the raw query.

    ``path`` is relative to the app (any prefix a proxy strips or adds as ``root_path`` is part of
    ``base_url``); the query is used byte for byte as received, because Twilio signs it verbatim.
    """
    url = base_url.rstrip("/") + "/" + path.lstrip("/")
    if query_string:
        url += "?" + query_string
    return url


class TwilioSignature:
    """Signs and verifies webhook requests with one auth token."""

    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise ValueError("a Twilio auth token is needed to sign or verify webhooks")
        self._validator = RequestValidator(auth_token)

    def sign(self, url: str, params: Mapping[str, str] | FormParams) -> str:
        fields = params if isinstance(params, FormParams) else FormParams.of(params)
        signature: str = self._validator.compute_signature(url, fields)
        return signature

    def verify(
        self, url: str, params: Mapping[str, str] | FormParams, signature: str | None
    ) -> bool:
        """True when ``signature`` is Twilio's for this URL and form; a missing one never is.

        Twilio is inconsistent about the port in the URL it signs (``:443`` or none), so both
        spellings are accepted, as Twilio's own validator does.
        """
        if not signature:
            return False
        fields = params if isinstance(params, FormParams) else FormParams.of(params)
        # The URL as given first: one HMAC instead of the validator's two for the usual request.
        if hmac.compare_digest(self._validator.compute_signature(url, fields), signature):
            return True
        return bool(self._validator.validate(url, fields, signature))
