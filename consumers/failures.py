"""What a failed ClickHouse call means, and how long the worker keeps trying.

Every store failure falls in one of three classes, and each has one answer:

* ``transient`` - the store is unreachable, slow or overloaded (connection
  refused or reset, timeouts, too many parts, memory or query limits). Retried
  with exponential backoff for at most ``store_retry_timeout_s``; the batch
  stays unacknowledged meanwhile, so nothing is lost.
* ``rejected`` - the store refused the *data* (a value it cannot parse or
  hold). Retrying cannot help: the sink isolates the offending rows and the
  ingest step dead-letters them with ``rejected_by_store``; the rest lands.
* ``unknown`` - anything else. Retried ``store_max_attempts`` times, then the
  worker exits non-zero without acking: a supervisor restarts it and the batch
  replays exactly (idempotent writes make the replay safe).

Nothing is retried forever: when a bound is reached :class:`StoreGaveUp` is raised.
"""

from __future__ import annotations

import re
import socket
from typing import Literal

from pipeline.errors import PulseError

FailureClass = Literal["transient", "rejected", "unknown"]

# ClickHouse error codes (src/Common/ErrorCodes.cpp).
TRANSIENT_CODES = frozenset({
    159,  # TIMEOUT_EXCEEDED
    160,  # TOO_SLOW
    164,  # READONLY (a replica catching up)
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    285,  # TOO_FEW_LIVE_REPLICAS
    319,  # UNKNOWN_STATUS_OF_INSERT
    373,  # SESSION_IS_LOCKED (a server still runs the session's previous query, e.g. one the client timed out on)
    425,  # SYSTEM_ERROR
    439,  # CANNOT_SCHEDULE_TASK
    999,  # KEEPER_EXCEPTION
})  # fmt: skip
REJECTED_CODES = frozenset({
    6,  # CANNOT_PARSE_TEXT
    26,  # CANNOT_PARSE_QUOTED_STRING
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,  # ATTEMPT_TO_READ_AFTER_EOF
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    53,  # TYPE_MISMATCH
    69,  # ARGUMENT_OUT_OF_BOUND
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    376,  # CANNOT_PARSE_UUID
    407,  # DECIMAL_OVERFLOW
    471,  # CANNOT_PARSE_BOOL
})  # fmt: skip
_CODE = re.compile(r"\bCode:\s*(\d+)")
_TRANSIENT_WORDS = ("connection refused", "connection reset", "timed out", "timeout", "broken pipe", "too many parts")


class StoreGaveUp(PulseError):
    """A store failure outlasted its retry bound; the batch must not be acknowledged."""


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code an exception carries (``Code: N`` in its message), if any."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def classify(exc: BaseException) -> FailureClass:
    """The class of a failed ClickHouse call (see the module docstring)."""
    if isinstance(exc, ConnectionError | TimeoutError | socket.timeout):
        return "transient"
    # clickhouse-connect's DataError: a Python value the client cannot serialise into the column type.
    if type(exc).__name__ == "DataError":
        return "rejected"
    code = error_code(exc)
    if code in REJECTED_CODES:
        return "rejected"
    if code in TRANSIENT_CODES:
        return "transient"
    if type(exc).__name__ == "OperationalError" or isinstance(exc, OSError):
        return "transient"  # clickhouse-connect wraps connection and HTTP failures in OperationalError
    message = str(exc).lower()
    if code is None and any(word in message for word in _TRANSIENT_WORDS):
        return "transient"
    return "unknown"
