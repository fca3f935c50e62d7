"""The read API's answers: strict JSON (no bare NaN), and a 400 - never a 500 - for parameters out of range."""

from __future__ import annotations

import json
from threading import Event
from typing import Any

import pytest

from pipeline.settings import Settings
from pipeline.usecases.api import api_pages


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _answer(name: str, query: dict[str, str], reader: Any = None) -> tuple[int, Any]:
    readers = {name: reader} if reader is not None else None
    pages = {p.path: p for p in (api_pages(Settings(), readers) if readers else api_pages(Settings()))}
    reply = pages[f"/api/{name}"].render(None, {}, query, Event())  # type: ignore[arg-type]  # never reaches the store
    return reply.status, _strict(str(reply.body))


def test_nan_and_infinities_are_null():
    def reader(client: Any, settings: Settings, params: Any, cancel: Event | None = None) -> Any:
        return {"rows": [[float("nan"), 1.5, float("inf")], (float("-inf"),)], "score": float("nan")}

    assert _answer("nan", {}, reader) == (200, {"rows": [[None, 1.5, None], [None]], "score": None})


@pytest.mark.parametrize(
    ("name", "query", "named"),
    [
        ("metrics/query", {"names": "events", "since": "999999999d"}, "since"),
        ("metrics/query", {"names": "events", "since": "999999999w"}, "since"),
        ("metrics/query", {"names": "events", "step": "999999999w"}, "step"),
        ("alerts/backtest", {"since": "999999999d"}, "since"),
        ("alerts/backtest", {"step": "99999999999w"}, "step"),
    ],
)
def test_a_duration_beyond_the_calendar_is_a_400_naming_it(name, query, named):
    status, body = _answer(name, query)
    assert status == 400 and body["error"].startswith(f"{named}:"), body
