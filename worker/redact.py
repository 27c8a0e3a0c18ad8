"""Secrets out of everything that leaves the process: one redaction for URLs, one for text.

What leaves the process: log lines, feeds, the status page, OPML, metrics, webhook bodies and
command output. A URL that goes there passes `redact_url`:

- userinfo (``user:password@``) is dropped: credentials are sent as HTTP Basic auth, never shown;
- a query (or fragment) parameter whose name looks secret (`SECRET_PARAM_NAMES`, or a name holding
  one of `SECRET_NAME_PARTS`) keeps its name and loses its value: ``?token=***``.

Free text (an error message, a log line) passes `redact_text`: every URL in it is redacted as
above, and every known secret value (`url_secrets` of the configured URLs, passwords read from
the environment or a file, the server's token) is replaced by `MASK` wherever it appears. Values
shorter than `MIN_MASKED_CHARS` are not masked by value (masking "abc" everywhere would mangle
every line); they are still dropped from URLs by their structure.

Pure: strings in, strings out. Which values are secret is the caller's to say
(`worker.config.Config.secret_values`); the log handler keeps the process's set
(`worker.service.logs.mask_secrets`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "MIN_MASKED_CHARS",
    "SECRET_NAME_PARTS",
    "SECRET_PARAM_NAMES",
    "is_secret_param",
    "mask_values",
    "redact_text",
    "redact_url",
    "strip_userinfo",
    "url_secrets",
]

MASK = "***"
# Shorter known values are not masked wherever they occur: a 3-character value matches too much.
MIN_MASKED_CHARS = 6

# Query parameter names (compared lower-cased) whose values are credentials: API keys, OAuth and
# session tokens, signed-URL signatures, passwords.
SECRET_PARAM_NAMES = frozenset(
    {
        "token", "key", "apikey", "api_key", "api-key", "secret", "password", "passwd", "pwd",
        "pass", "sig", "signature", "auth", "authorization", "access_token", "refresh_token",
        "id_token", "client_secret", "private_token", "session", "sessionid", "phpsessid",
        "jsessionid", "credential", "credentials", "x-amz-credential", "x-goog-credential",
    }
)  # fmt: skip
# A name holding one of these is secret too ("hub.secret", "X-Amz-Signature", "my_api_token").
SECRET_NAME_PARTS = ("token", "secret", "passw", "apikey", "api_key", "api-key", "signature")
# ...and one ending in these ("access_key", "private-key", "url_sig"), while "keyword" is not.
SECRET_NAME_ENDINGS = ("_key", "-key", ".key", "_sig", "-sig", "_auth", "-auth")

# A URL inside free text. The scheme is a list of literals, so the search stays linear.
_URL_IN_TEXT = re.compile(r"(?:https?|wss?|ftp|postgres(?:ql)?)://[^\s<>\"'`]+", re.IGNORECASE)
_PARAM_SEPARATOR = re.compile(r"([&;])")


def is_secret_param(name: str) -> bool:
    """True when a query parameter called `name` carries a credential, by its name alone."""
    lowered = unquote_plus(name).strip().lower()
    return (
        lowered in SECRET_PARAM_NAMES
        or any(part in lowered for part in SECRET_NAME_PARTS)
        or lowered.endswith(SECRET_NAME_ENDINGS)
    )


def strip_userinfo(url: str) -> str:
    """`url` without ``user:password@``; everything else as written."""
    if "@" not in url:
        return url  # no userinfo without an "@": spare the parse
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.rpartition("@")[2]
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def redact_url(url: str) -> str:
    """`url` fit to show: no userinfo, and the values of secret-looking parameters masked."""
    if "@" not in url and "?" not in url and "#" not in url:
        return url
    try:
        parts = urlsplit(strip_userinfo(url))
    except ValueError:  # not a URL we can take apart: show none of what may follow the host
        return url.rpartition("@")[2].partition("?")[0]
    query, fragment = _mask_params(parts.query), _mask_params(parts.fragment)
    if query == parts.query and fragment == parts.fragment:
        return urlunsplit(parts)
    return urlunsplit(parts._replace(query=query, fragment=fragment))


def url_secrets(url: str) -> tuple[str, ...]:
    """The secret values written in `url`: its userinfo password and the values of its
    secret-looking parameters, each as written and percent-decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    values: list[str] = []
    if parts.password:
        values.append(parts.password)
    for params in (parts.query, parts.fragment):
        for pair in _PARAM_SEPARATOR.split(params):
            name, equals, value = pair.partition("=")
            if equals and value and is_secret_param(name):
                values.append(value)
    decoded = [unquote_plus(value) for value in values]
    return tuple(dict.fromkeys(v for v in [*values, *decoded] if v))


def mask_values(text: str, secrets: Collection[str]) -> str:
    """`text` with every known secret value (of at least `MIN_MASKED_CHARS`) replaced by MASK."""
    for secret in _longest_first(secrets):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_text(text: str, secrets: Collection[str] = ()) -> str:
    """`text` with each URL in it redacted (`redact_url`) and each known secret value masked."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)
    return mask_values(text, secrets) if secrets else text


def _mask_params(params: str) -> str:
    if "=" not in params:
        return params
    pieces = _PARAM_SEPARATOR.split(params)  # separators kept, so the rest is left as written
    for n, pair in enumerate(pieces):
        name, equals, value = pair.partition("=")
        if equals and value and is_secret_param(name):
            pieces[n] = f"{name}={MASK}"
    return "".join(pieces)


def _longest_first(secrets: Iterable[str]) -> list[str]:
    """Long values first, so a secret containing a shorter one is masked whole."""
    return sorted((s for s in secrets if len(s) >= MIN_MASKED_CHARS), key=len, reverse=True)
