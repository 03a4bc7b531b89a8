"""Credentials in URLs (`user:password@`, signed query strings, tokens) hidden wherever a URL is
shown or written: the terminal, reports, CSVs, the review page, a catalog's run log.

Works on any text (a message, a whole JSON document), so no URL inside it escapes. The URL as
given is still what is read: only what is shown or stored is redacted.
"""

from __future__ import annotations

import re

HIDDEN = "***"
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s\"'<>]+)@")
# Query parameters that carry a secret: AWS, Google and Azure signed URLs, OAuth, API keys.
_SECRET_PARAMETER = re.compile(
    r"(?P<lead>[?&;](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature"
    r"|X-Goog-Credential|Signature|sig|token|access_token|id_token|api_key|apikey|key|password"
    r"|secret|client_secret)=)(?P<value>[^&#\s\"'<>]+)",
    re.IGNORECASE,
)


def redacted(text: str) -> str:
    """`text` with every URL's userinfo and secret query values replaced by HIDDEN."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{HIDDEN}@", text)
    return _SECRET_PARAMETER.sub(lambda m: f"{m['lead']}{HIDDEN}", text)


def carries_credentials(url: str) -> bool:
    return redacted(url) != url


def redacted_urls(value: object) -> object:
    """`value` (JSON-like: dicts, lists, strings) with every string that holds a URL redacted;
    local paths are left exactly as they are, even one with `?key=` in its name."""
    if isinstance(value, str):
        return redacted(value) if "://" in value else value
    if isinstance(value, dict):
        return {key: redacted_urls(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redacted_urls(item) for item in value]
    return value
