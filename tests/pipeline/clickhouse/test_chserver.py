"""The ClickHouse stand-in itself, at the HTTP level: what a ClickHouse server answers, byte for byte where it matters.

``test_server_path.py`` drives it through clickhouse-connect; these requests
are raw (urllib), so a stand-in that only happened to satisfy the client, and
not ClickHouse's HTTP interface, fails here.
"""

from __future__ import annotations

import base64
import gzip
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import clickhouse_connect
import lz4.frame
import pytest
from backports import zstd

from pipeline.settings import Settings


def call(server: Any, params: dict[str, str] | None = None, body: bytes | None = None, **headers: str) -> Any:
    """One request as an HTTP client sends it; returns (status, headers, body) for errors too."""
    token = base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
    request = urllib.request.Request(
        f"{server.url}/?{urlencode(params or {})}",
        data=body,
        headers={"Authorization": f"Basic {token}", **{k.replace("_", "-"): v for k, v in headers.items()}},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_ping_and_a_query_in_the_url(clickhouse_server):
    with urllib.request.urlopen(f"{clickhouse_server.url}/ping", timeout=10) as response:
        assert (response.status, response.read()) == (200, b"Ok.\n")
    status, headers, body = call(clickhouse_server, {"query": "SELECT 1 + {n:UInt8}", "param_n": "41"})
    assert (status, body) == (200, b"42\n")  # TabSeparated unless told otherwise
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert json.loads(headers["X-ClickHouse-Summary"])["read_rows"] == "1"
    assert headers["X-ClickHouse-Timezone"]


def test_the_body_continues_the_url_query_and_default_format_applies(clickhouse_server):
    status, headers, body = call(
        clickhouse_server, {"query": "SELECT number AS n", "default_format": "JSONEachRow"}, b"FROM numbers(2)"
    )
    assert (status, body) == (200, b'{"n":0}\n{"n":1}\n')
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"


# (the statement, the error code, ClickHouse's HTTP status for it: exceptionCodeToHTTPStatus)
ERRORS = [
    ("SELEC 1", 62, 400),
    ("SELECT * FROM system.nothing", 60, 404),
    ("SELECT toUUID('x')", 376, 400),
    ("SELECT sleep(1) FROM numbers(2) SETTINGS max_block_size = 1, max_execution_time = 0.5", 159, 408),
    ("SELECT throwIf(1)", 395, 500),
]


@pytest.mark.parametrize(("sql", "code", "status"), ERRORS)
def test_errors_carry_code_body_and_status_as_clickhouse_sends_them(clickhouse_server, sql, code, status):
    got, headers, body = call(clickhouse_server, {"query": sql})
    assert got == status
    assert headers["X-ClickHouse-Exception-Code"] == str(code)
    text = body.decode()
    assert text.startswith(f"Code: {code}. DB::Exception: ") and text.endswith(" (official build))\n")


def test_wrong_password_and_unknown_setting(clickhouse_server):
    status, headers, _ = call(clickhouse_server, {"query": "SELECT 1"}, Authorization="Basic " + "eDp5")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    status, headers, _ = call(clickhouse_server, {"query": "SELECT 1", "no_such_setting": "1"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "115")


def test_insert_data_compressed_after_the_statement_in_the_url(clickhouse_server):
    db = "chserver_insert_test"
    assert call(clickhouse_server, {"query": f"CREATE DATABASE IF NOT EXISTS {db}"})[0] == 200
    ddl = f"CREATE TABLE IF NOT EXISTS {db}.t (a UInt32, s String) ENGINE = MergeTree ORDER BY a"
    assert call(clickhouse_server, {"query": ddl})[0] == 200
    rows = b"".join(f"{i}\trow {i}\n".encode() for i in range(1000))
    status, headers, _ = call(
        clickhouse_server,
        {"query": f"INSERT INTO {db}.t FORMAT TabSeparated"},
        gzip.compress(rows),
        Content_Encoding="gzip",
    )
    assert status == 200 and json.loads(headers["X-ClickHouse-Summary"])["written_rows"] == "1000"
    # The statement in the body, its data after the FORMAT line, the whole body lz4-framed (the client's default).
    body = lz4.frame.compress(f"INSERT INTO {db}.t (a, s) FORMAT CSV\n".encode() + b'1000,"x"\n1001,"y"\n')
    assert call(clickhouse_server, {}, body, Content_Encoding="lz4")[0] == 200
    _, _, count = call(clickhouse_server, {"query": f"SELECT count(), max(a) FROM {db}.t"})
    assert count == b"1002\t1001\n"


def test_sessions_keep_use_and_set_and_can_be_required(clickhouse_server):
    session = {"session_id": "chserver-session-test"}
    assert call(clickhouse_server, {**session, "query": "SET max_threads = 1"})[0] == 200
    assert call(clickhouse_server, {**session, "query": "USE system"})[0] == 200
    _, _, body = call(clickhouse_server, {**session, "query": "SELECT currentDatabase(), getSetting('max_threads')"})
    assert body == b"system\t1\n"
    _, _, body = call(clickhouse_server, {"query": "SELECT currentDatabase(), getSetting('max_threads') = 1"})
    assert body == b"default\t0\n", "without the session, neither lasts"
    status, headers, _ = call(
        clickhouse_server, {"session_id": "never-made", "session_check": "1", "query": "SELECT 1"}
    )
    assert headers["X-ClickHouse-Exception-Code"] == "372"  # SESSION_NOT_FOUND


@pytest.mark.parametrize("compression", ["zstd", "gzip", "lz4"])
def test_a_compressed_raw_insert_puts_the_statement_in_the_url(clickhouse_server, compression):
    """clickhouse-connect's raw_insert with compression streams the data alone and sends the INSERT as ``query``."""
    settings = Settings(clickhouse_dsn=clickhouse_server.dsn())
    c = clickhouse_connect.get_client(dsn=settings.clickhouse_url)
    try:
        db = f"chserver_raw_{compression}"
        c.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        c.command(f"CREATE OR REPLACE TABLE {db}.t (a UInt32) ENGINE = MergeTree ORDER BY a")
        data = b"".join(f"{i}\n".encode() for i in range(500))
        packed = {"zstd": zstd.compress, "gzip": gzip.compress, "lz4": lz4.frame.compress}[compression]
        c.raw_insert(f"{db}.t", ["a"], packed(data), fmt="TabSeparated", compression=compression)
        assert c.command(f"SELECT sum(a) FROM {db}.t") == sum(range(500))
    finally:
        c.close()
