"""What may be shown of the settings: every value with its secrets masked, and any text scrubbed of them.

:func:`effective_settings` is what ``pulse config show`` prints: every
``PULSE_`` setting, its value and where it came from. A secret is never shown:

* ``SecretStr`` fields are ``***`` - except that a write-key list keeps its
  product names (``checkout=***,search=***``) and a URL keeps what locates it:
  a DSN shows ``http://user:***@host:8123/db`` (the password masked, query
  values masked), a webhook URL only its scheme and host (``https://hooks.example/***``:
  its path and query often *are* the token);
* any other URL setting (Alertmanager, Grafana, dashboards) has a password in
  it masked, and its query values.

:func:`redact` replaces every secret value of a :class:`~pipeline.settings.Settings`
in a text by ``***``: the CLI passes its error messages through it, since an
exception from a client library may quote a DSN or a URL it was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr

from pipeline.settings import Settings

MASK = "***"
_HOST_ONLY = frozenset({"alert_webhook_url"})  # secrets whose whole path and query may be the token


def mask_url(url: str, host_only: bool = False) -> str:
    """A URL with its password and query values masked (``host_only``: all but scheme and host masked)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return MASK
    if not parts.scheme or (not host and not parts.path):
        return MASK  # not a URL: it may be the secret itself
    netloc = host or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port is not None:
        netloc += f":{port}"
    if parts.username:
        netloc = f"{parts.username}:{MASK}@{netloc}" if parts.password is not None else f"{parts.username}@{netloc}"
    if host_only:
        return urlunsplit((parts.scheme, netloc, f"/{MASK}" if parts.path.strip("/") or parts.query else "", "", ""))
    query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def shown_value(name: str, value: Any) -> Any:
    """A setting's value as ``pulse config show`` prints it: secrets masked, paths as text, None as None."""
    if value is None:
        return None
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if name == "collector_write_keys":
            products = [pair.partition("=")[0].strip() for pair in secret.split(",") if pair.strip()]
            return ",".join(f"{p}={MASK}" for p in products)
        if "://" in secret:
            return mask_url(secret, host_only=name in _HOST_ONLY)
        return MASK
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and "://" in value:
        return ",".join(mask_url(u.strip()) if "://" in u else u for u in value.split(","))
    return value


def effective_settings(
    settings: Settings, environ: Mapping[str, str], flags: Mapping[str, object] = {}
) -> list[tuple[str, Any, str]]:
    """``(PULSE_ variable, shown value, source)`` of every setting; source is ``flag``, ``env`` or ``default``.

    ``environ`` is the environment the settings were read from (pydantic-settings matches names case-insensitively,
    so does this); ``flags`` the command-line overrides that were given.
    """
    env_names = {k.upper() for k in environ}
    rows = []
    for name in Settings.model_fields:
        variable = f"PULSE_{name.upper()}"
        if flags.get(name) is not None:
            source = "flag"
        elif variable in env_names:
            source = "env"
        else:
            source = "default"
        rows.append((variable, shown_value(name, getattr(settings, name)), source))
    return rows


def secret_values(settings: Settings) -> list[str]:
    """Every secret a text must not show: each SecretStr's value, its URL's password, each write key (values of
    fewer than 4 characters are left alone: masking them would mangle the text, and no real secret is that short)."""
    found: set[str] = set()
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if not isinstance(value, SecretStr):
            if isinstance(value, str) and "://" in value:
                for url in value.split(","):
                    found.update(_url_secrets(url))
            continue
        secret = value.get_secret_value()
        found.add(secret)
        found.update(_url_secrets(secret, host_only=name in _HOST_ONLY))
        if name == "collector_write_keys":
            found.update(pair.partition("=")[2].strip() for pair in secret.split(","))
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)  # longest first: no half-masked value


def _url_secrets(url: str, host_only: bool = False) -> set[str]:
    """A URL's password and query values; ``host_only``: its path too, whole and each segment of 8 or more
    characters (a webhook's token is a path segment; shorter ones are words such as ``services``)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return set()
    out = {parts.password} if parts.password else set()
    out.update(v for _, v in parse_qsl(parts.query) if v)
    if host_only and parts.path.strip("/"):
        out.add(parts.path)
        out.update(segment for segment in parts.path.split("/") if len(segment) >= 8)
    return out


def redact(text: str, settings: Settings | None) -> str:
    """``text`` with every secret of ``settings`` replaced by ``***``."""
    if settings is None:
        return text
    for secret in secret_values(settings):
        text = text.replace(secret, MASK)
    return text
