"""The fetcher against a real HTTP server on 127.0.0.1 that logs every request it gets.

Each test gives the server the routes it needs; a path without a route answers 404, so
robots.txt is "unavailable" (everything allowed) unless a test serves one.
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qa.config import FetchSettings
from qa.ingest.web.fetch import (
    LISTING_TYPES,
    Fetcher,
    FetchRequest,
    FetchResult,
    FetchStatus,
    Validators,
    media_type_of,
    retry_after_seconds,
)

PAGE = b"<html><head><title>t</title></head><body><p>An article.</p></body></html>"
UA = "test-bot/1.0 (+https://example.org/bot)"


@dataclass(frozen=True)
class Hit:
    path: str
    headers: dict[str, str]  # lower-case names
    at: float  # time.monotonic() when the request arrived


Route = Callable[["Handler"], None]


class Server(ThreadingHTTPServer):
    """Routes by path; logs each request and the most requests it ever had at once."""

    daemon_threads = True  # a handler still sleeping or trickling does not hold up shutdown

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        with self.lock:
            return [hit.path for hit in self.hits]

    def page_hits(self) -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.path != "/robots.txt"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as real servers
    server: Server

    def do_GET(self) -> None:
        server = self.server
        path = self.path.split("?")[0]
        with server.lock:
            server.hits.append(Hit(path, {k.lower(): v for k, v in self.headers.items()}, time.monotonic()))
            server.active += 1
            server.most_active = max(server.most_active, server.active)
        try:
            server.routes.get(path, not_found)(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the fetcher hung up, as it should on a body it refuses
        finally:
            with server.lock:
                server.active -= 1

    def log_message(self, format: str, *args: object) -> None:
        pass


def reply(
    handler: Handler,
    status: int = 200,
    body: bytes = PAGE,
    content_type: str = "text/html; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    if status != 304:
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    if status != 304:
        handler.wfile.write(body)


def not_found(handler: Handler) -> None:
    reply(handler, 404, b"not found", "text/plain")


def page(handler: Handler) -> None:
    reply(handler)


def redirect(location: str, status: int = 301) -> Route:
    def route(handler: Handler) -> None:
        reply(handler, status, b"", headers={"Location": location})

    return route


def robots(text: str) -> Route:
    def route(handler: Handler) -> None:
        reply(handler, 200, text.encode(), "text/plain")

    return route


def chunked(handler: Handler, chunks: Iterator[bytes], content_type: str = "text/html") -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for chunk in chunks:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def settings(**changes: object) -> FetchSettings:
    """Loopback allowed, no politeness delay, short limits: what most tests want."""
    base = FetchSettings(
        user_agent=UA, allowed_hosts=("127.0.0.1",), min_delay_seconds=0.0, timeout_seconds=5.0, max_retries=2
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(settings(), backoff_seconds=0.05) as f:
        yield f


def get(fetcher: Fetcher, url: str, **request: object) -> FetchResult:
    return fetcher.fetch(FetchRequest(url, **request))  # type: ignore[arg-type]


# --- robots.txt and the User-Agent ----------------------------------------------------------


def test_robots_rules_for_our_agent_are_obeyed_and_robots_is_asked_once(server: Server) -> None:
    # The rules for our agent allow /public/; the catch-all would forbid it: only a fetcher that
    # reads the group of its own user agent fetches /public/.
    server.routes["/robots.txt"] = robots(
        "User-agent: test-bot\nDisallow: /private/\n\nUser-agent: *\nDisallow: /\n"
    )
    server.routes["/public/a"] = page
    server.routes["/public/b"] = page
    server.routes["/private/a"] = page
    with Fetcher(settings(), backoff_seconds=0.05) as fetcher:
        results = {
            r.url: r
            for r in fetcher.fetch_all([FetchRequest(server.url(p)) for p in ("/public/a", "/private/a")])
        }
        again = fetcher.fetch(FetchRequest(server.url("/public/b")))
    assert results[server.url("/public/a")].status is FetchStatus.OK
    blocked = results[server.url("/private/a")]
    assert blocked.status is FetchStatus.SKIPPED
    assert blocked.reason == "disallowed by robots.txt"
    assert again.status is FetchStatus.OK
    assert server.paths().count("/robots.txt") == 1
    assert "/private/a" not in server.paths()
    assert fetcher.stats.robots_files == 1


def test_robots_unreachable_disallows_the_host(server: Server) -> None:
    server.routes["/robots.txt"] = lambda h: reply(h, 503, b"down", "text/plain")
    server.routes["/a"] = page
    with Fetcher(settings(max_retries=0)) as fetcher:
        result = get(fetcher, server.url("/a"))
    assert result.status is FetchStatus.SKIPPED
    assert "robots.txt" in result.reason and "disallow" in result.reason
    assert server.paths() == ["/robots.txt"]


def test_an_empty_robots_allows_everything(server: Server, fetcher: Fetcher) -> None:
    server.routes["/robots.txt"] = robots("")
    server.routes["/a"] = page
    assert get(fetcher, server.url("/a")).status is FetchStatus.OK


def test_crawl_delay_is_honoured(server: Server) -> None:
    server.routes["/robots.txt"] = robots("User-agent: *\nCrawl-delay: 1\n")
    server.routes["/a"] = page
    server.routes["/b"] = page
    with Fetcher(settings(per_host_concurrency=2)) as fetcher:
        assert all(
            r.status is FetchStatus.OK
            for r in fetcher.fetch_all([FetchRequest(server.url("/a")), FetchRequest(server.url("/b"))])
        )
    starts = sorted(hit.at for hit in server.page_hits())
    assert starts[1] - starts[0] >= 0.95


def test_user_agent_is_sent_with_every_request(server: Server, fetcher: Fetcher) -> None:
    server.routes["/a"] = page
    assert get(fetcher, server.url("/a")).status is FetchStatus.OK
    with server.lock:
        agents = {hit.path: hit.headers.get("user-agent") for hit in server.hits}
    assert agents == {"/robots.txt": UA, "/a": UA}


# --- redirects ------------------------------------------------------------------------------


def test_a_redirect_chain_is_followed(server: Server, fetcher: Fetcher) -> None:
    server.routes["/a"] = redirect(server.url("/b"))
    server.routes["/b"] = redirect("/c", 302)  # relative
    server.routes["/c"] = redirect("d", 308)  # relative to /c
    server.routes["/d"] = page
    result = get(fetcher, server.url("/a"))
    assert result.status is FetchStatus.OK
    assert result.url == server.url("/a")
    assert result.final_url == server.url("/d")
    assert result.body == PAGE
    assert [h.path for h in server.page_hits()] == ["/a", "/b", "/c", "/d"]


def test_a_redirect_loop_is_skipped(server: Server, fetcher: Fetcher) -> None:
    server.routes["/x"] = redirect("/y")
    server.routes["/y"] = redirect("/x")
    result = get(fetcher, server.url("/x"))
    assert result.status is FetchStatus.SKIPPED
    assert result.reason.startswith("redirect loop")
    assert [h.path for h in server.page_hits()] == ["/x", "/y"]


def test_too_many_redirects_are_skipped(server: Server) -> None:
    for n in range(10):
        server.routes[f"/hop{n}"] = redirect(f"/hop{n + 1}")
    server.routes["/hop10"] = page
    with Fetcher(settings(max_redirects=3)) as fetcher:
        result = get(fetcher, server.url("/hop0"))
    assert result.status is FetchStatus.SKIPPED
    assert "more than 3 redirects" in result.reason
    assert [h.path for h in server.page_hits()] == ["/hop0", "/hop1", "/hop2", "/hop3"]


def test_a_redirect_to_another_private_address_is_refused(server: Server, fetcher: Fetcher) -> None:
    # Only 127.0.0.1 is allowed; 127.0.0.2 is loopback too, and not on the list.
    server.routes["/away"] = redirect(f"http://127.0.0.2:{server.port}/inside")
    result = get(fetcher, server.url("/away"))
    assert result.status is FetchStatus.SKIPPED
    # Refused at the hop itself (not only as a side effect of its robots.txt being refused).
    assert result.reason.startswith("refused: 127.0.0.2 is a loopback address"), result.reason
    assert result.final_url == f"http://127.0.0.2:{server.port}/inside"
    assert result.attempts == 1  # refused, not a failed connection tried again


# --- addresses and schemes ------------------------------------------------------------------


def test_default_settings_refuse_loopback_without_a_request(server: Server) -> None:
    server.routes["/a"] = page
    with Fetcher(FetchSettings()) as fetcher:
        by_ip = get(fetcher, server.url("/a"))
        by_name = get(fetcher, server.url("/a", host="localhost"))
    for result in (by_ip, by_name):
        assert result.status is FetchStatus.SKIPPED
        assert "loopback" in result.reason and "refused" in result.reason
    assert server.paths() == []
    assert fetcher.stats.requests == 0


@pytest.mark.parametrize(
    "change", [{"allow_private_hosts": True, "allowed_hosts": ()}, {"allowed_hosts": ("127.0.0.0/8",)}]
)
def test_private_hosts_can_be_allowed(server: Server, change: dict[str, object]) -> None:
    server.routes["/a"] = page
    with Fetcher(settings(**change)) as fetcher:
        assert get(fetcher, server.url("/a")).status is FetchStatus.OK


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/file.html", "file:///etc/passwd", "javascript:alert(1)"])
def test_only_http_and_https(server: Server, fetcher: Fetcher, url: str) -> None:
    result = get(fetcher, url)
    assert result.status is FetchStatus.SKIPPED
    assert result.reason.startswith("only http and https")
    assert fetcher.stats.requests == 0


# --- statuses and retries -------------------------------------------------------------------


@pytest.mark.parametrize("code", [404, 410])
def test_404_and_410_are_gone(server: Server, fetcher: Fetcher, code: int) -> None:
    server.routes["/a"] = lambda h: reply(h, code, b"gone", "text/plain")
    result = get(fetcher, server.url("/a"))
    assert result.status is FetchStatus.GONE
    assert result.http_status == code
    assert result.reason.startswith(f"HTTP {code}")


def failing_then_ok(failures: list[tuple[int, dict[str, str]]]) -> Route:
    """Answers each of ``failures`` in turn, then the page."""
    left = list(failures)

    def route(handler: Handler) -> None:
        if left:
            code, headers = left.pop(0)
            reply(handler, code, b"try again", "text/plain", headers)
        else:
            page(handler)

    return route


def test_a_500_is_asked_again(server: Server, fetcher: Fetcher) -> None:
    server.routes["/a"] = failing_then_ok([(500, {})])
    result = get(fetcher, server.url("/a"))
    assert result.status is FetchStatus.OK
    assert result.attempts == 2
    assert fetcher.stats.responses[500] == 1 and fetcher.stats.responses[200] == 1


def test_a_500_that_persists_is_skipped(server: Server, fetcher: Fetcher) -> None:
    server.routes["/a"] = lambda h: reply(h, 500, b"broken", "text/plain")
    result = get(fetcher, server.url("/a"))
    assert result.status is FetchStatus.SKIPPED
    assert result.reason == "HTTP 500 after 3 attempts"  # max_retries=2
    assert result.attempts == 3
    assert len(server.page_hits()) == 3


def test_429_waits_for_retry_after(server: Server, fetcher: Fetcher) -> None:
    server.routes["/a"] = failing_then_ok([(429, {"Retry-After": "1"})])
    started = time.monotonic()
    result = get(fetcher, server.url("/a"))
    assert result.status is FetchStatus.OK
    assert result.attempts == 2
    first, second = server.page_hits()
    assert second.at - first.at >= 0.95
    assert time.monotonic() - started < 4


def test_a_retry_after_too_long_is_skipped_for_now(server: Server, fetcher: Fetcher) -> None:
    server.routes["/a"] = failing_then_ok([(503, {"Retry-After": "3600"})])
    started = time.monotonic()
    result = get(fetcher, server.url("/a"))
    assert result.status is FetchStatus.SKIPPED
    assert "Retry-After 3600 s" in result.reason and "max_retry_after_seconds" in result.reason
    assert result.http_status == 503
    assert len(server.page_hits()) == 1
    assert time.monotonic() - started < 2


def test_a_refused_connection_is_retried_then_skipped() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Fetcher(settings(max_retries=1), backoff_seconds=0.05) as fetcher:
        # robots.txt unreachable means the page is refused too; its reason says so.
        result = get(fetcher, f"http://127.0.0.1:{port}/a")
        assert fetcher.stats.requests == 2  # robots.txt, asked twice; the page never
    assert result.status is FetchStatus.SKIPPED
    assert "connection failed" in result.reason and "robots.txt" in result.reason


def test_retry_after_forms() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-5") is None
    now = 1_700_000_000.0
    assert retry_after_seconds(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30.0)
    assert retry_after_seconds(formatdate(now - 30, usegmt=True), now=now) == 0.0


# --- bounds on time and size ----------------------------------------------------------------


def test_a_slow_page_is_cut_at_the_timeout(server: Server) -> None:
    def slow(handler: Handler) -> None:
        time.sleep(3)
        page(handler)

    server.routes["/slow"] = slow
    with Fetcher(settings(timeout_seconds=1.0)) as fetcher:
        started = time.monotonic()
        result = get(fetcher, server.url("/slow"))
        took = time.monotonic() - started
    assert result.status is FetchStatus.SKIPPED
    assert result.reason == "timed out after 1 s (fetch.timeout_seconds)"
    assert 0.9 <= took < 2.0
    assert len(server.page_hits()) == 1  # a timeout is not asked again


def test_a_page_that_never_ends_is_cut_at_the_whole_request_deadline(server: Server) -> None:
    # Each byte comes well within any per-read timeout; only a deadline on the whole request ends it.
    def trickle(handler: Handler) -> None:
        def forever() -> Iterator[bytes]:
            for _ in range(400):
                time.sleep(0.05)
                yield b"<p>"

        chunked(handler, forever())

    server.routes["/trickle"] = trickle
    with Fetcher(settings(timeout_seconds=1.0)) as fetcher:
        started = time.monotonic()
        result = get(fetcher, server.url("/trickle"))
        took = time.monotonic() - started
        assert 0 < fetcher.stats.body_bytes < 100
    assert result.status is FetchStatus.SKIPPED
    assert result.reason.startswith("timed out")
    assert 0.9 <= took < 2.0


def test_a_declared_length_over_the_limit_is_not_downloaded(server: Server) -> None:
    total = 50_000_000
    written = [0]

    def huge(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        block = b"x" * 65536
        while written[0] < total:
            handler.wfile.write(block)
            written[0] += len(block)

    server.routes["/huge"] = huge
    with Fetcher(settings(max_body_bytes=1_000_000)) as fetcher:
        result = get(fetcher, server.url("/huge"))
        assert fetcher.stats.body_bytes == 0
    assert result.status is FetchStatus.SKIPPED
    assert result.reason == "body of 50000000 bytes is over fetch.max_body_bytes (1000000)"
    time.sleep(0.2)  # the server notices the closed connection
    assert written[0] < total


def test_a_chunked_body_over_the_limit_stops_at_the_limit(server: Server) -> None:
    limit = 100_000
    server.routes["/big"] = lambda h: chunked(h, (b"y" * 10_000 for _ in range(5_000)))
    with Fetcher(settings(max_body_bytes=limit)) as fetcher:
        result = get(fetcher, server.url("/big"))
        downloaded = fetcher.stats.body_bytes
    assert result.status is FetchStatus.SKIPPED
    assert "over fetch.max_body_bytes (100000)" in result.reason
    assert limit < downloaded < limit + 70_000  # one read past the limit at most, not 50 MB


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 100 KB of gzip that decodes to 100 MB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * 1_000_000
    bomb = b"".join(packer.compress(block) for _ in range(100)) + packer.flush()
    assert len(bomb) < 200_000
    return bomb


def test_a_gzip_bomb_stops_at_the_limit_in_bounded_memory(server: Server, gzip_bomb: bytes) -> None:
    server.routes["/bomb"] = lambda h: reply(h, body=gzip_bomb, headers={"Content-Encoding": "gzip"})
    with Fetcher(settings(max_body_bytes=1_000_000)) as fetcher:
        tracemalloc.start()
        try:
            result = get(fetcher, server.url("/bomb"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        downloaded = fetcher.stats.body_bytes
    assert result.status is FetchStatus.SKIPPED
    assert result.reason == "body is over fetch.max_body_bytes (1000000) (decoded)"
    assert peak < 20_000_000  # the limit and a read or two, never the 100 MB
    assert downloaded < len(gzip_bomb)  # stopped reading, too


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_compressed_bodies_are_decoded(server: Server, fetcher: Fetcher, encoding: str) -> None:
    if encoding == "gzip":
        packed = gzip.compress(PAGE)
    elif encoding == "deflate":
        packed = zlib.compress(PAGE)
    else:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed = packer.compress(PAGE) + packer.flush()
    sent = "deflate" if encoding == "raw-deflate" else encoding
    server.routes["/z"] = lambda h: reply(h, body=packed, headers={"Content-Encoding": sent})
    result = get(fetcher, server.url("/z"))
    assert result.status is FetchStatus.OK
    assert result.body == PAGE
    assert fetcher.stats.body_bytes == len(packed)
    with server.lock:
        assert server.hits[-1].headers["accept-encoding"] == "gzip, deflate"


# --- content types --------------------------------------------------------------------------


def test_a_pdf_is_skipped_unread(server: Server, fetcher: Fetcher) -> None:
    server.routes["/doc"] = lambda h: reply(h, body=b"%PDF-1.4" * 1000, content_type="application/pdf")
    result = get(fetcher, server.url("/doc"))
    assert result.status is FetchStatus.SKIPPED
    assert result.reason == "not an HTML page: application/pdf"
    assert result.media_type == "application/pdf"
    assert fetcher.stats.body_bytes == 0


def test_accept_chooses_the_types_taken(server: Server, fetcher: Fetcher) -> None:
    server.routes["/feed"] = lambda h: reply(h, body=b"<rss/>", content_type="application/rss+xml")
    assert get(fetcher, server.url("/feed")).status is FetchStatus.SKIPPED
    result = get(fetcher, server.url("/feed"), accept=LISTING_TYPES)
    assert result.status is FetchStatus.OK
    assert result.media_type == "application/rss+xml" and result.body == b"<rss/>"


def test_media_type_and_charset() -> None:
    assert media_type_of('Text/HTML; Charset="windows-1256"') == ("text/html", "windows-1256")
    assert media_type_of("application/xhtml+xml") == ("application/xhtml+xml", None)
    assert media_type_of(None) == ("", None)


# --- conditional requests -------------------------------------------------------------------


def test_etag_and_last_modified_make_an_unchanged_page_a_304(server: Server, fetcher: Fetcher) -> None:
    modified = "Wed, 25 Jan 2017 10:00:00 GMT"

    def versioned(handler: Handler) -> None:
        if (
            handler.headers.get("If-None-Match") == '"v1"'
            or handler.headers.get("If-Modified-Since") == modified
        ):
            reply(handler, 304)
        else:
            reply(handler, headers={"ETag": '"v1"', "Last-Modified": modified})

    server.routes["/a"] = versioned
    first = get(fetcher, server.url("/a"))
    assert first.status is FetchStatus.OK
    assert first.validators == Validators('"v1"', modified)
    downloaded = fetcher.stats.body_bytes
    assert downloaded == len(PAGE)

    second = get(fetcher, server.url("/a"), validators=first.validators)
    assert second.status is FetchStatus.NOT_MODIFIED
    assert second.http_status == 304 and second.body == b""
    assert second.validators == first.validators
    only_date = get(fetcher, server.url("/a"), validators=Validators(last_modified=modified))
    assert only_date.status is FetchStatus.NOT_MODIFIED
    assert only_date.validators == Validators(None, modified)

    assert fetcher.stats.body_bytes == downloaded  # the 304s cost no body
    assert fetcher.stats.not_modified == 2
    hits = server.page_hits()
    assert "if-none-match" not in hits[0].headers
    assert hits[1].headers["if-none-match"] == '"v1"' and hits[1].headers["if-modified-since"] == modified


def test_a_304_with_new_validators_updates_them(server: Server, fetcher: Fetcher) -> None:
    server.routes["/a"] = lambda h: reply(h, 304, headers={"ETag": '"v2"'})
    result = get(fetcher, server.url("/a"), validators=Validators('"v1"', "Wed, 25 Jan 2017 10:00:00 GMT"))
    assert result.status is FetchStatus.NOT_MODIFIED
    assert result.validators == Validators('"v2"', "Wed, 25 Jan 2017 10:00:00 GMT")


# --- concurrency and politeness -------------------------------------------------------------


def slow_page(seconds: float) -> Route:
    def route(handler: Handler) -> None:
        time.sleep(seconds)
        page(handler)

    return route


def test_per_host_concurrency_is_respected(server: Server) -> None:
    for n in range(8):
        server.routes[f"/p{n}"] = slow_page(0.2)
    with Fetcher(settings(concurrency=8, per_host_concurrency=2)) as fetcher:
        results = list(fetcher.fetch_all(FetchRequest(server.url(f"/p{n}")) for n in range(8)))
    assert [r.status for r in results] == [FetchStatus.OK] * 8
    assert server.most_active == 2


def test_total_concurrency_is_respected(server: Server) -> None:
    for n in range(6):
        server.routes[f"/p{n}"] = slow_page(0.1)
    with Fetcher(settings(concurrency=1, per_host_concurrency=4)) as fetcher:
        results = list(fetcher.fetch_all(FetchRequest(server.url(f"/p{n}")) for n in range(6)))
    assert len(results) == 6
    assert server.most_active == 1


def test_min_delay_separates_starts_to_one_host(server: Server) -> None:
    for n in range(4):
        server.routes[f"/p{n}"] = page
    with Fetcher(settings(min_delay_seconds=0.2, per_host_concurrency=4)) as fetcher:
        results = list(fetcher.fetch_all(FetchRequest(server.url(f"/p{n}")) for n in range(4)))
    assert len(results) == 4
    with server.lock:
        starts = sorted(hit.at for hit in server.hits)  # robots.txt is a request to the host too
    assert len(starts) == 5
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.18, gaps


def test_results_come_as_they_complete_and_the_fetcher_is_reusable(server: Server) -> None:
    server.routes["/slow"] = slow_page(0.5)
    server.routes["/fast"] = page
    with Fetcher(settings(per_host_concurrency=2)) as fetcher:
        order = [
            r.url
            for r in fetcher.fetch_all([FetchRequest(server.url("/slow")), FetchRequest(server.url("/fast"))])
        ]
        assert order == [server.url("/fast"), server.url("/slow")]
        assert fetcher.fetch(FetchRequest(server.url("/fast"))).status is FetchStatus.OK
        assert fetcher.stats.requests == 4  # robots.txt once, three pages
        assert fetcher.stats.results["ok"] == 3
    with pytest.raises(RuntimeError):
        fetcher.fetch(FetchRequest(server.url("/fast")))


def test_a_request_that_is_not_one_is_a_programming_error(fetcher: Fetcher) -> None:
    with pytest.raises(TypeError):
        list(fetcher.fetch_all([None]))  # type: ignore[list-item]
