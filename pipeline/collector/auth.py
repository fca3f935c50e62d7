"""Write keys: parsing ``PULSE_COLLECTOR_WRITE_KEYS`` and checking a request's ``Authorization`` header.

A key covers the products it is configured for; keys are compared in constant
time and never appear in an error message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from pipeline.collector.errors import Rejected

_BEARER = {"WWW-Authenticate": 'Bearer realm="pulse"'}


def parse_write_keys(raw: str) -> dict[str, str]:
    """``product=key,product2=key2`` as {product: key}. Errors never quote a key."""
    keys: dict[str, str] = {}
    for n, item in enumerate(raw.split(","), start=1):
        if not item.strip():
            continue
        product, sep, key = item.partition("=")
        product, key = product.strip(), key.strip()
        if not sep or not product or not key:
            raise ValueError(f"collector_write_keys: item {n} is not product=key")
        if len(product) > 64 or any(c.isspace() for c in product):
            raise ValueError(f"collector_write_keys: item {n} has an invalid product name")
        if product in keys:
            raise ValueError(f"collector_write_keys: product {product!r} appears twice")
        keys[product] = key
    if not keys:
        raise ValueError("collector_write_keys holds no product=key pair")
    return keys


def authorize(authorization: str | None, write_keys: dict[str, str]) -> frozenset[str]:
    """The products a ``Bearer`` write key covers; raises 401 for a missing or unknown key.

    Every configured key is compared in constant time, so timing tells nothing
    about which key (or how much of it) matched.
    """
    scheme, _, presented = (authorization or "").strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise Rejected(401, "missing write key: send Authorization: Bearer <key>", "no_key", headers=_BEARER)
    return products_for_key(presented, write_keys)


def products_for_key(presented: str | None, write_keys: dict[str, str], how: str = "Bearer") -> frozenset[str]:
    """The products a write key covers, however the route carries it; 401 for a missing or unknown key.

    ``how`` only words the 401 (``Bearer``, ``Basic``, ``api_key``): every
    route checks a key against the same table, in constant time.
    """
    challenge = {"WWW-Authenticate": f'{"Basic" if how == "Basic" else "Bearer"} realm="pulse"'}
    if not presented:
        raise Rejected(401, f"missing write key ({how})", "no_key", headers=challenge)
    given = presented.encode()
    products = frozenset(p for p, key in write_keys.items() if hmac.compare_digest(given, key.encode()))
    if not products:
        raise Rejected(401, "unknown write key", "bad_key", headers=challenge)
    return products


def basic_user(authorization: str | None) -> str | None:
    """The user of an ``Authorization: Basic`` header (Segment's SDKs send the write key as user, no password)."""
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def bearer_key(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer`` header, or None."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    return presented.strip() or None if scheme.lower() == "bearer" else None
