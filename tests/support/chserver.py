"""A stand-in for a ClickHouse server, for tests only: ClickHouse's HTTP interface served over chDB.

No ClickHouse server can be installed on this machine, yet production talks to
one over HTTP (``PULSE_CLICKHOUSE_DSN=http://user:pass@host:8123/db``). This
module lets the tests run that production path - clickhouse-connect's HTTP
client, unchanged - against the real ClickHouse engine: a process of its own
(as the public chdb-server project does) runs an HTTP server over one chDB
engine, so several workers can share one store as they would share a server.
It is never shipped: it lives under ``tests/`` and the application knows
nothing of it.

What it serves is the part of ClickHouse's HTTP interface clickhouse-connect
uses, with ClickHouse's semantics:

* ``GET /ping`` answers ``Ok.``; ``GET|POST /`` runs one statement, taken from
  the ``query`` parameter followed by a newline and the body (so an INSERT's
  data may follow its ``FORMAT`` clause in the body, or the statement may sit in
  ``query`` and the body be data alone).
* ``database``, ``default_format`` (else TabSeparated), ``query_id``,
  ``param_<name>`` bound parameters, and every other parameter as a setting
  for that one query - a ``SET`` inside a session lasts, a URL setting does not.
* ``session_id`` (with ``session_timeout`` and ``session_check``): a session is
  its own chDB connection, so ``USE`` and ``SET`` last; a second query while
  one runs in the session fails with SESSION_IS_LOCKED, as on a server.
* Request bodies in ``Content-Encoding`` lz4 (frame), zstd, gzip, deflate or
  br, chunked or not; responses compressed when ``enable_http_compression=1``
  and the client accepts one of those.
* Any input or output format chDB has (Native, ArrowStream, Arrow,
  RowBinaryWithNamesAndTypes, JSON...), from the ``FORMAT`` clause or
  ``default_format``; an INSERT with ``FORMAT`` streams its data into chDB.
* Headers clickhouse-connect reads: ``X-ClickHouse-Summary``,
  ``-Query-Id``, ``-Format``, ``-Timezone``, ``-Server-Display-Name``, and on
  failure ``X-ClickHouse-Exception-Code`` with the body ``Code: N.
  DB::Exception: ... (NAME) (version V)`` and the HTTP status ClickHouse's
  ``exceptionCodeToHTTPStatus`` gives that code - so the client raises what it
  raises against a server.
* Users: with ``--user``/``--password`` the server takes Basic auth,
  ``X-ClickHouse-User``/``-Key`` or ``user``/``password`` parameters, and
  refuses anything else with AUTHENTICATION_FAILED (403).

Deliberately not served: ClickHouse's native compression (``decompress=1``,
answered NOT_IMPLEMENTED), the ``client_protocol_version`` block info (the
client probes for it and falls back, as with any server that lacks it),
progress headers, and the TCP protocol. A query runs on when its client goes
away (a server cancels a read-only one under
``cancel_http_readonly_queries_on_client_close``; an INSERT runs on there too).
A response is materialised before it is sent (tests read small results).

Run it as ``python tests/support/chserver.py --path DIR [--port 0]``: it prints
``listening http://127.0.0.1:PORT`` when ready. :class:`ChServer` does that
for the tests (``tests/conftest.py`` fixtures ``clickhouse_server`` and
``server_store``). Only the standard library and chDB are imported here, so the
process starts without the project on its path.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# Names the HTTP interface consumes itself; every other parameter is a setting of the query.
_TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "session_id", "session_timeout", "session_check", "query_id",
    "user", "password", "quota_key", "compress", "decompress", "buffer_size", "wait_end_of_query",
    "client_protocol_version", "role", "enable_http_compression", "http_zlib_compression_level",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "max_query_size_in_url",
})  # fmt: skip

# exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), by error name; the numbers
# come from the engine itself (errorCodeToName), so they cannot drift from the names.
_STATUS_BY_NAME = {
    **dict.fromkeys(("REQUIRED_PASSWORD",), 401),
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"), 403
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT", "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE", "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE", "THERE_IS_NO_COLUMN", "TOO_DEEP_AST",
            "TOO_BIG_AST", "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE", "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE", "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING", "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT", "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "CANNOT_SCHEDULE_TASK": 503,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}  # fmt: skip

_CODE = re.compile(r"Code: (\d+)\.")
# An INSERT whose data follows: everything up to FORMAT <name> and the end of that line.
_INSERT_WITH_DATA = re.compile(rb"\A\s*(INSERT\s+INTO\s.*?)\s+FORMAT\s+(\w+)[ \t]*(?:\r?\n|\Z)", re.I | re.S)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*(?:SETTINGS\s.*)?;?\s*\Z", re.I | re.S)
_PRODUCES_RESULT = re.compile(r"\A[\s(]*(SELECT|WITH|SHOW|DESC|DESCRIBE|EXPLAIN|EXISTS|CHECK|VALUES)\b", re.I)
_SET_OR_USE = re.compile(r"\A\s*(SET|USE)\s+(\S+)", re.I)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}


class ServerError(Exception):
    """A failure answered the way ClickHouse answers it: an error code and its message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- the server side (runs in the stand-in's own process) --------------------------------------------


@dataclass
class _Session:
    conn: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    timeout_s: float = 60.0
    last_used: float = field(default_factory=time.monotonic)
    database: str = "default"  # changed only by USE, as on a server


class Engine:
    """One chDB engine and its sessions; every query of the stand-in runs here."""

    def __init__(self, path: str) -> None:
        import chdb  # noqa: PLC0415 - only the server process loads the engine

        self._chdb = chdb
        self.path = path
        self.root = chdb.connect(path)  # held for the process's life: the engine lives while a handle does
        self._lock = threading.Lock()
        self.sessions: dict[str, _Session] = {}
        info = self.root.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split()
        self.version, self.timezone = info[0], info[1]
        names = self.root.query(
            "SELECT number, errorCodeToName(number) FROM numbers(2000) WHERE errorCodeToName(number) != ''",
            "TabSeparated",
        ).bytes()
        self.code_names = {int(c): n for c, n in (line.split("\t") for line in names.decode().splitlines())}
        by_name = {n: c for c, n in self.code_names.items()}
        self.status_by_code = {by_name[n]: s for n, s in _STATUS_BY_NAME.items() if n in by_name}

    def connect(self) -> Any:
        with self._lock:
            return self._chdb.connect(self.path)

    def session(self, session_id: str, timeout_s: float, check: bool) -> _Session:
        now = time.monotonic()
        with self._lock:
            for sid, s in list(self.sessions.items()):
                if sid != session_id and now - s.last_used > s.timeout_s and not s.lock.locked():
                    del self.sessions[sid]
                    s.conn.close()
            session = self.sessions.get(session_id)
            if session is None:
                if check:
                    raise ServerError(372, f"Session {session_id} not found. (SESSION_NOT_FOUND)")
                session = _Session(self._chdb.connect(self.path), timeout_s=timeout_s)
                self.sessions[session_id] = session
            session.last_used = now
            session.timeout_s = timeout_s
            return session

    def error_message(self, exc: BaseException) -> tuple[int, str]:
        """The code and the body ClickHouse would send: ``Code: N. DB::Exception: ... (NAME) (version V)``."""
        text = str(exc).strip()
        if isinstance(exc, ServerError):
            code = exc.code
            text = f"Code: {code}. DB::Exception: {text}"
        else:
            start = text.find("Code: ")
            text = text[start:] if start >= 0 else f"Code: 1001. DB::Exception: {type(exc).__name__}: {text}"
            match = _CODE.match(text)
            code = int(match.group(1)) if match else 1001
        if "(version " not in text:
            text = f"{text} (version {self.version} (official build))"
        return code, text + "\n"


@dataclass
class _Query:
    """One request, parsed the way ClickHouse's HTTPHandler reads it."""

    sql: str
    data: bytes | None  # an INSERT ... FORMAT's data, else None
    data_format: str
    output_format: str
    database: str | None
    settings: dict[str, str]
    params: dict[str, str]


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "lz4":
        import lz4.frame  # noqa: PLC0415

        return bytes(lz4.frame.decompress(body))
    if encoding == "zstd":
        return _zstd().decompress(body)
    if encoding == "br":
        import brotli  # noqa: PLC0415

        return bytes(brotli.decompress(body))
    raise ServerError(36, f"Unknown Content-Encoding of HTTP request: {encoding}. (BAD_ARGUMENTS)")


def _zstd() -> Any:
    try:
        from compression import zstd  # noqa: PLC0415 - Python 3.14
    except ImportError:
        from backports import zstd  # noqa: PLC0415
    return zstd


def _compress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body, compresslevel=3)
    if encoding == "deflate":
        return zlib.compress(body, 3)
    if encoding == "lz4":
        import lz4.frame  # noqa: PLC0415

        return bytes(lz4.frame.compress(body))
    return bytes(_zstd().compress(body))


def _response_encoding(accept: str) -> str | None:
    """The first encoding the client accepts that the stand-in writes."""
    for item in accept.split(","):
        name = item.split(";")[0].strip().lower()
        if name in ("lz4", "zstd", "gzip", "deflate"):
            return name
    return None


def parse_query(params: dict[str, str], body: bytes) -> _Query:
    """The statement, its data and its settings, from the URL parameters and the (decompressed) body."""
    head = params.get("query", "").encode()
    data: bytes | None = None
    if head and body and _INSERT_WITH_DATA.match(head + b"\n"):
        text, data = head, body  # the statement in the URL, the data alone in the body
    else:
        text = head + b"\n" + body if head and body else head or body
    data_format = ""
    match = _INSERT_WITH_DATA.match(text)
    if match:
        data = text[match.end() :] if data is None else data
        data_format = match.group(2).decode()
        text = match.group(1)
    if not text.strip():
        raise ServerError(62, "Empty query. (SYNTAX_ERROR)")
    settings = {k: v for k, v in params.items() if k not in _TRANSPORT_PARAMS and not k.startswith("param_")}
    binds = {k.removeprefix("param_"): v for k, v in params.items() if k.startswith("param_")}
    return _Query(
        sql=text.decode("utf-8", "surrogateescape"),
        data=data,
        data_format=data_format,
        output_format=params.get("default_format") or "TabSeparated",
        database=params.get("database") or None,
        settings=settings,
        params=binds,
    )


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ServerError(115, f"Unknown setting '{name}'. (UNKNOWN_SETTING)")
    return name


class _Settings:
    """Apply a query's URL settings to a connection for one query, and put the connection back after."""

    def __init__(self, conn: Any, settings: dict[str, str]) -> None:
        self.conn = conn
        self.settings = settings
        self.before: list[tuple[str, str, bool]] = []

    def __enter__(self) -> None:
        if not self.settings:
            return
        names = ", ".join(_quote(_check_name(k)) for k in self.settings)
        rows = self.conn.query(
            f"SELECT name, value, changed FROM system.settings WHERE name IN ({names})", "JSONEachRow"
        ).bytes()
        for line in rows.decode().splitlines():
            row = json.loads(line)
            self.before.append((row["name"], row["value"], bool(row["changed"])))
        self.conn.query("SET " + ", ".join(f"{k} = {_quote(v)}" for k, v in self.settings.items()), "TabSeparated")

    def __exit__(self, *exc: object) -> None:
        if not self.before:
            return
        restore = [f"{n} = {_quote(v)}" if changed else f"{n} = DEFAULT" for n, v, changed in self.before]
        self.conn.query("SET " + ", ".join(restore), "TabSeparated")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandInServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        if self.server.verbose:
            super().log_message(format, *args)

    # --- routes ---------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = urlsplit(self.path).path
        if path in ("/ping", "/replicas_status"):
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        self._query()

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self._query()

    # --- one query --------------------------------------------------------------------------------
    def _query(self) -> None:
        engine = self.server.engine
        query_id = ""
        try:
            split = urlsplit(self.path)
            body = _decompress(self._read_body(), self.headers.get("Content-Encoding", ""))
            if split.path not in ("/", ""):
                raise ServerError(
                    0, f"There is no handle {split.path}. Use / or /ping. (UNKNOWN_EXCEPTION)"
                )  # as ClickHouse: 404 below
            params = dict(parse_qsl(split.query, keep_blank_values=True))
            self._authenticate(params)
            query_id = params.get("query_id") or str(uuid.uuid4())
            if params.get("decompress") in ("1", "true"):
                raise ServerError(48, "The stand-in does not read ClickHouse's native compression. (NOT_IMPLEMENTED)")
            query = parse_query(params, body)
            session_id = params.get("session_id")
            if session_id:
                session = engine.session(
                    session_id, float(params.get("session_timeout") or 60), params.get("session_check") == "1"
                )
                if not session.lock.acquire(blocking=False):
                    raise ServerError(
                        373, f"Session {session_id} is locked by a concurrent client. (SESSION_IS_LOCKED)"
                    )
                try:
                    status, payload, headers = self._run(session.conn, query, session)
                finally:
                    session.last_used = time.monotonic()
                    session.lock.release()
            else:
                conn = engine.connect()
                try:
                    status, payload, headers = self._run(conn, query, None)
                finally:
                    conn.close()
        except Exception as exc:  # noqa: BLE001 - every failure is answered as ClickHouse answers it
            code, message = engine.error_message(exc)
            status = 404 if code == 0 else engine.status_by_code.get(code, 500)
            self._send(
                status,
                message.encode(),
                {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": str(code),
                    "X-ClickHouse-Query-Id": query_id,
                    "X-ClickHouse-Server-Display-Name": "chserver-stand-in",
                },
            )
            return
        headers.update({"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": engine.timezone})
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        encoding = _response_encoding(self.headers.get("Accept-Encoding", ""))
        if payload and encoding and params.get("enable_http_compression") in ("1", "true"):
            payload = _compress(payload, encoding)
            headers["Content-Encoding"] = encoding
        self._send(status, payload, headers)

    def _run(self, conn: Any, query: _Query, session: _Session | None) -> tuple[int, bytes, dict[str, str]]:
        database = query.database or (session.database if session else "default")
        conn.query(f"USE `{database.replace('`', '')}`", "TabSeparated")
        started = time.perf_counter()
        headers = {"X-ClickHouse-Server-Display-Name": "chserver-stand-in"}
        sql = _COMMENTS.sub(" ", query.sql).strip()
        set_or_use = _SET_OR_USE.match(sql)
        # A SET or USE changes the session itself; URL settings would only be undone after it.
        with _Settings(conn, {} if set_or_use else query.settings):
            if query.data is not None:
                inserter = conn.send_insert(query.sql, query.data_format)
                try:
                    if query.data:
                        inserter.append(query.data)
                    result = inserter.finish()
                except BaseException:
                    inserter.close()
                    raise
                written, written_bytes, payload = result.rows_written, result.bytes_written, b""
                read = read_bytes = 0
            else:
                result = conn.query(query.sql, query.output_format, params=query.params)
                payload = result.bytes() or b""
                written = written_bytes = 0
                read, read_bytes = result.rows_read(), result.bytes_read()
        if session and set_or_use and set_or_use.group(1).upper() == "USE":
            session.database = set_or_use.group(2).strip('`";')
        elapsed_ns = int((time.perf_counter() - started) * 1e9)
        summary = {
            "read_rows": str(read),
            "read_bytes": str(read_bytes),
            "written_rows": str(written),
            "written_bytes": str(written_bytes),
            "total_rows_to_read": str(read),
            "result_rows": str(written or read),
            "result_bytes": str(len(payload)),
            "elapsed_ns": str(elapsed_ns),
        }
        headers["X-ClickHouse-Summary"] = json.dumps(summary, separators=(",", ":"))
        if query.data is None and _PRODUCES_RESULT.match(sql):
            trailing = _TRAILING_FORMAT.search(sql)
            fmt = trailing.group(1) if trailing else query.output_format
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = _CONTENT_TYPES.get(fmt, "application/octet-stream")
        else:
            headers["Content-Type"] = "text/plain; charset=UTF-8"
        return 200, payload, headers

    # --- HTTP plumbing ------------------------------------------------------------------------------
    def _authenticate(self, params: dict[str, str]) -> None:
        user, password = "default", ""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        elif "X-ClickHouse-User" in self.headers:
            user, password = self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        elif "user" in params:
            user, password = params["user"], params.get("password", "")
        if (user, password) != (self.server.user, self.server.password):
            raise ServerError(
                516,
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name. "
                "(AUTHENTICATION_FAILED)",
            )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Keep-Alive", "timeout=10")
        self.end_headers()
        self.wfile.write(payload)


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # several workers connect at once

    def __init__(self, address: tuple[str, int], engine: Engine, user: str, password: str, verbose: bool) -> None:
        super().__init__(address, Handler)
        self.engine = engine
        self.user = user
        self.password = password
        self.verbose = verbose


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Test-only stand-in for a ClickHouse server (HTTP over chDB)")
    parser.add_argument("--path", required=True, help="chDB data folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    engine = Engine(args.path)
    server = StandInServer((args.host, args.port), engine, args.user, args.password, args.verbose)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"listening http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


# --- the test side: start and stop the stand-in ------------------------------------------------------


class ChServer:
    """The stand-in as a child process: ``start()`` waits until it listens; ``dsn(database)`` reaches it."""

    def __init__(self, path: Path, log_path: Path, user: str = "pulse", password: str = "stand-in-secret") -> None:
        self.path = path
        self.log_path = log_path
        self.user = user
        self.password = password
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self, port: int = 0, timeout_s: float = 60.0) -> ChServer:
        """Start the server (on ``port``, or the port it had before, or any free one) and wait until it listens."""
        self.path.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a")  # noqa: SIM115 - the child writes to it for its life
        cmd = [sys.executable, __file__, "--path", str(self.path), "--port", str(port or self.port)]
        cmd += ["--user", self.user, "--password", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        assert self.proc.stdout is not None
        line = ""
        while time.monotonic() < deadline and not line:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"the ClickHouse stand-in did not start; see {self.log_path}")
        self.port = int(line.rsplit(":", 1)[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def dsn(self, database: str = "") -> str:
        """``http://user:pass@127.0.0.1:port/db``: the production DSN shape."""
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


if __name__ == "__main__":
    main()
