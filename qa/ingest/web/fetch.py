"""A polite, bounded HTTP fetcher for pages, feeds and sitemaps (``qa reindex --source URL``).

Every URL it is given comes from the open web, often from a feed or sitemap that someone
else controls, so the fetcher treats each one as hostile:

- only ``http`` and ``https``; every host is resolved first and refused when any of its
  addresses is private, loopback, link-local, multicast, reserved or unspecified (so that a
  feed cannot make the indexer probe the internal network), unless ``fetch.allow_private_hosts``
  or ``fetch.allowed_hosts`` lifts that;
- redirects are followed by hand, so that each hop is checked like the first URL (scheme,
  address, robots.txt) and loops and long chains end;
- one deadline (``fetch.timeout_seconds``) covers a whole request, connecting to last byte,
  so a page that trickles forever is cut; bodies are read up to ``fetch.max_body_bytes`` after
  decompression, which the fetcher does itself, bounded, so a gzip bomb stops at the limit;
- content types outside the request's ``accept`` are skipped before their body is read.

And it is polite: robots.txt is read once per origin and obeyed (its Crawl-delay too), one
User-Agent is sent, requests are limited in all and per host with a least delay between two
starts to one host, and 429/503/500 are asked again after their Retry-After or a backoff.
Unchanged pages cost one 304: the request's validators go out as If-None-Match and
If-Modified-Since.

Nothing is raised for a bad page or server: every outcome is a :class:`FetchResult` whose
``reason`` says in a few words why a page was skipped. Exceptions mean a programming error.

The work is done by one ``httpx.AsyncClient`` on an event loop in a background thread that
lives as long as the :class:`Fetcher`; :meth:`Fetcher.fetch_all` is a plain iterator over the
results as they complete, usable from synchronous code (even from inside another event loop)
and any number of times.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import http
import ipaddress
import queue
import socket
import threading
import time
import urllib.robotparser
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from enum import StrEnum
from types import TracebackType
from typing import Protocol

import httpx

from qa.config import FetchSettings

PAGE_TYPES: tuple[str, ...] = ("text/html", "application/xhtml+xml")
# Feeds, sitemaps and plain lists of URLs (qa.ingest.web.listings); gzip for sitemap.xml.gz.
LISTING_TYPES: tuple[str, ...] = (
    "application/xml",
    "text/xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/feed+json",
    "application/json",
    "text/plain",
    "application/gzip",
    "application/x-gzip",
)

# Asked again after a Retry-After or a backoff (fetch.max_retries times); other statuses are final.
RETRY_STATUSES = frozenset({429, 500, 503})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
GONE_STATUSES = frozenset({404, 410})
# Decoded here, bounded; anything else (br, zstd) would need a decoder we cannot bound, so the
# request asks only for these.
ACCEPT_ENCODING = "gzip, deflate"
# The first wait of the exponential backoff when a retried response gives no Retry-After.
BACKOFF_SECONDS = 1.0
# How many requests fetch_all hands to the event loop ahead of the caller, so that a lazy
# iterable of requests is read lazily and a caller that stops early leaves little to cancel.
_WINDOW_PER_SLOT = 8
_END = object()  # the end of fetch_all's requests (None in them is a caller's error, not the end)


class FetchStatus(StrEnum):
    OK = "ok"  # a body (2xx)
    NOT_MODIFIED = "not_modified"  # 304 to a conditional request
    GONE = "gone"  # 404 or 410
    SKIPPED = "skipped"  # anything else: refused, robots, too large, timeout, bad type, error; see reason


@dataclass(frozen=True)
class Validators:
    """What a server said identifies a version of a page, sent back to ask "changed since?"."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchRequest:
    url: str
    validators: Validators | None = None  # sent as If-None-Match / If-Modified-Since
    accept: tuple[str, ...] = PAGE_TYPES  # media types taken; others SKIPPED


@dataclass(frozen=True)
class FetchResult:
    url: str  # as asked
    final_url: str  # after redirects (== url when none)
    status: FetchStatus
    http_status: int | None  # the last response's status, None when none came
    body: bytes = b""  # decoded of any Content-Encoding; only for OK
    media_type: str = ""  # Content-Type's media type, lower case ("text/html")
    charset: str | None = None  # Content-Type's charset parameter, as sent (may be wrong)
    validators: Validators = Validators()  # of the OK response (or those sent, for 304)
    reason: str = ""  # for SKIPPED (and GONE): a short, clear reason
    attempts: int = 1  # HTTP tries of the URL: 1 + the retries, redirect hops not counted


@dataclass
class FetchStats:
    """Counters for a round's summary line; updated by the fetcher's thread, read by anyone."""

    requests: int = 0  # HTTP requests sent (robots.txt, retries and redirect hops included)
    responses: Counter[int] = field(default_factory=Counter)  # by HTTP status
    results: Counter[str] = field(default_factory=Counter)  # by FetchStatus of the URLs asked
    body_bytes: int = 0  # body bytes downloaded, as sent (before decompression)
    not_modified: int = 0  # 304s
    robots_files: int = 0  # robots.txt files asked for (one per origin)
    transport_errors: int = 0  # connections refused or broken, timeouts

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.responses.items()))
        return (
            f"{self.requests} requests ({self.robots_files} robots.txt), {self.body_bytes} body bytes, "
            f"{self.not_modified} not modified, {self.transport_errors} transport errors; "
            f"responses {{{statuses}}}"
        )


def media_type_of(content_type: str | None) -> tuple[str, str | None]:
    """The lower-case media type and the charset parameter (as sent) of a Content-Type."""
    if not content_type:
        return "", None
    media, *params = content_type.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').strip("'") or None
    return media.strip().lower(), charset


def _accepted(media_type: str, accept: tuple[str, ...]) -> bool:
    for wanted in accept:
        wanted = wanted.lower()
        if wanted in ("*/*", media_type) or (wanted.endswith("/*") and media_type.startswith(wanted[:-1])):
            return True
    return False


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After asks to wait (a number, or an HTTP-date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)  # the RFC says digits; some servers send "1.5"
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None  # no negatives, no NaN
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT; a date without a zone is read as such
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# --- addresses ------------------------------------------------------------------------------


def _address_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not a public one, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 reaches 127.0.0.1; Python 3.11 does not look through it.
        ip = ip.ipv4_mapped
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:  # shared address space 100.64.0.0/10 and the like
        return "non-public"
    return None


class _AddressPolicy:
    """Which hosts may be fetched: public addresses, and what fetch.allowed_hosts names."""

    def __init__(self, settings: FetchSettings) -> None:
        self._allow_all = settings.allow_private_hosts
        self._names: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in settings.allowed_hosts:
            entry = entry.strip().lower()
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._names.add(entry.rstrip("."))

    def _address_allowed(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._networks)

    async def refusal(self, url: httpx.URL, port: int) -> str | None:
        """Why the URL's host must not be fetched, or None. Resolves names (in a thread:
        getaddrinfo blocks) and refuses when any address is not public, since a connection may
        use any of them."""
        if self._allow_all:
            return None
        host = url.host
        # The ASCII (punycode) form is what DNS knows; an allow-list may name either form.
        name = url.raw_host.decode("ascii").lower().rstrip(".")
        if name in self._names or host.lower().rstrip(".") in self._names:
            return None
        try:
            literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(name)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await asyncio.to_thread(socket.getaddrinfo, name, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError) as error:
                return f"cannot resolve host {host}: {error}"
            addresses = []
            for info in infos:
                with contextlib.suppress(ValueError):
                    # An IPv6 scope (fe80::1%eth0) is not part of the address.
                    addresses.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
            if not addresses:
                return f"cannot resolve host {host}"
        for ip in addresses:
            kind = _address_kind(ip)
            if kind is not None and not self._address_allowed(ip):
                where = host if literal is not None else f"{host} ({ip})"
                return (
                    f"refused: {where} is a {kind} address "
                    "(fetch.allow_private_hosts or fetch.allowed_hosts lifts this)"
                )
        return None


# --- bounded decoding -----------------------------------------------------------------------


class _Decoder(Protocol):
    def feed(self, data: bytes, room: int) -> bytes: ...

    def end(self) -> bytes: ...


class _Identity:
    def feed(self, data: bytes, room: int) -> bytes:
        return data[: room + 1]

    def end(self) -> bytes:
        return b""


class _Inflate:
    """gzip (any number of members) or deflate (zlib-wrapped or raw), never producing more than
    asked: ``feed`` returns at most ``room + 1`` bytes, so a few KB that would inflate to
    gigabytes cost no more memory than the body limit."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        # 32 + MAX_WBITS reads a gzip or zlib header; deflate's wrapping is found on the first bytes.
        self._wbits: int | None = 32 + zlib.MAX_WBITS if self._gzip else None
        self._inflater: zlib._Decompress | None = None

    def _start(self, data: bytes) -> zlib._Decompress:
        if self._wbits is None:
            # RFC 9110's deflate is zlib-wrapped, but servers often send it raw.
            zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
        return zlib.decompressobj(self._wbits)

    def feed(self, data: bytes, room: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while data:
            if self._inflater is None:
                self._inflater = self._start(data)
            piece = self._inflater.decompress(data, room + 1 - total)
            parts.append(piece)
            total += len(piece)
            if total > room:
                break
            if self._inflater.eof:
                data = self._inflater.unused_data
                if not self._gzip or not data.strip(b"\0"):
                    break  # trailing padding after the last member
                self._inflater = None  # another gzip member follows
            else:
                data = self._inflater.unconsumed_tail
        return b"".join(parts)

    def end(self) -> bytes:
        if self._inflater is None:
            return b""
        if not self._inflater.eof:
            raise zlib.error("compressed body cut short")
        return self._inflater.flush()


def _decoder_for(content_encoding: str) -> _Decoder | None:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return _Identity()
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflate(encoding)
    return None


# --- robots.txt -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Robots:
    """One origin's robots.txt as it applies to our user agent."""

    parser: urllib.robotparser.RobotFileParser | None = None  # None: allow all (or deny, below)
    deny_reason: str | None = None  # set: nothing on the origin may be fetched this run

    def refusal(self, url: str, user_agent: str) -> str | None:
        if self.deny_reason is not None:
            return self.deny_reason
        if self.parser is not None and not self.parser.can_fetch(user_agent, url):
            return "disallowed by robots.txt"
        return None


# --- one HTTP request -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    """A response, its body read (within limits) only when it is a 2xx we take."""

    status: int
    headers: httpx.Headers
    body: bytes = b""
    media_type: str = ""
    charset: str | None = None
    refusal: str | None = None  # a 2xx whose body we would not take (type, size, encoding)


@dataclass(frozen=True)
class _Failure:
    """No usable response: ``reason`` says why; ``retry`` when asking again may help."""

    reason: str
    retry: bool = False
    http_status: int | None = None


@dataclass
class _Host:
    """Politeness state of one host (all its ports and schemes)."""

    slots: asyncio.Semaphore
    delay: float  # least seconds between two starts: fetch.min_delay_seconds, or a larger Crawl-delay
    next_start: float = 0.0  # loop time before which no request to the host starts
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Engine:
    """The asynchronous fetcher; lives on the Fetcher's event loop, never touched from elsewhere."""

    def __init__(self, settings: FetchSettings, stats: FetchStats, backoff_seconds: float) -> None:
        self._settings = settings
        self._stats = stats
        self._backoff = backoff_seconds
        self._policy = _AddressPolicy(settings)
        self._slots = asyncio.Semaphore(max(1, settings.concurrency))
        self._hosts: dict[str, _Host] = {}
        self._robots: dict[tuple[str, str, int | None], asyncio.Task[_Robots]] = {}
        # Our own limits bound the connections; the pool never waits. httpx's timeouts are a
        # backstop: the whole-request deadline is asyncio.timeout around each request.
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(settings.timeout_seconds),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=max(1, settings.concurrency)),
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            # Nothing implicit from the environment (proxies, .netrc credentials) for URLs that
            # hostile feeds choose: what a request carries is what this module sets.
            trust_env=False,
        )

    async def aclose(self) -> None:
        for task in self._robots.values():
            task.cancel()
        await self._client.aclose()

    # The public coroutine: one URL, redirects followed.

    async def fetch(self, request: FetchRequest) -> FetchResult:
        result = await self._follow(request.url, request.validators, request.accept, robots=True)
        self._stats.results[result.status.value] += 1
        return result

    async def _follow(
        self, url_text: str, validators: Validators | None, accept: tuple[str, ...] | None, *, robots: bool
    ) -> FetchResult:
        """Fetch ``url_text`` and the redirects it leads to, checking every hop; ``accept`` None
        takes any type and cuts a long body at the limit instead of skipping it (robots.txt)."""

        def skipped(reason: str, final: str, http_status: int | None = None) -> FetchResult:
            return FetchResult(
                url_text, final, FetchStatus.SKIPPED, http_status, reason=reason, attempts=attempts
            )

        attempts = 1
        try:
            url = httpx.URL(url_text)
        except (httpx.InvalidURL, ValueError, TypeError) as error:
            return skipped(f"not a valid URL: {error}", url_text)
        url = url.copy_with(fragment=None)  # never sent; and two URLs differing only there are one page
        seen = {str(url)}
        headers = _conditional_headers(validators)
        if accept is not None:
            headers["Accept"] = ", ".join(accept)
        hops = 0
        while True:
            final = url_text if hops == 0 else str(url)
            refusal = self._url_refusal(url) or await self._policy.refusal(url, _port_of(url))
            if refusal is None and robots:
                refusal = (await self._robots_of(url)).refusal(str(url), self._settings.user_agent)
            if refusal is not None:
                return skipped(refusal, final)
            outcome, tries = await self._with_retries(url, headers, accept)
            attempts += tries - 1
            if isinstance(outcome, _Failure):
                return skipped(outcome.reason, final, outcome.http_status)
            if outcome.status not in REDIRECT_STATUSES:
                return _result(url_text, final, outcome, validators, attempts)
            location = outcome.headers.get("location")
            if not location:
                return skipped(f"HTTP {outcome.status} redirect without a Location", final, outcome.status)
            try:
                target = url.join(location.strip()).copy_with(fragment=None)
            except (httpx.InvalidURL, ValueError) as error:
                return skipped(f"redirect to an invalid URL: {error}", final, outcome.status)
            hops += 1
            if str(target) in seen:
                return skipped(f"redirect loop at {target}", final, outcome.status)
            if hops > self._settings.max_redirects:
                return skipped(
                    f"more than {self._settings.max_redirects} redirects (fetch.max_redirects)",
                    final,
                    outcome.status,
                )
            seen.add(str(target))
            url = target

    @staticmethod
    def _url_refusal(url: httpx.URL) -> str | None:
        if url.scheme not in ("http", "https"):
            return f"only http and https are fetched, not {url.scheme or 'a URL without a scheme'}"
        if not url.host:
            return "URL without a host"
        return None

    async def _with_retries(
        self, url: httpx.URL, headers: dict[str, str], accept: tuple[str, ...] | None
    ) -> tuple[_Reply | _Failure, int]:
        """One request, asked again (fetch.max_retries times) on 429/500/503 or a broken
        connection, waiting out Retry-After or an exponential backoff. Returns the outcome and
        how many tries it took."""
        settings = self._settings
        tries = 0
        while True:
            tries += 1
            outcome = await self._request(url, headers, accept)
            if isinstance(outcome, _Failure):
                if not outcome.retry or tries > settings.max_retries:
                    if tries > 1:
                        outcome = _Failure(
                            f"{outcome.reason} ({tries} attempts)", http_status=outcome.http_status
                        )
                    return outcome, tries
                wait = self._backoff * 2 ** (tries - 1)
            elif outcome.status in RETRY_STATUSES:
                asked = retry_after_seconds(outcome.headers.get("retry-after"))
                if asked is not None and asked > settings.max_retry_after_seconds:
                    return _Failure(
                        f"HTTP {outcome.status} with Retry-After {asked:g} s, longer than "
                        f"fetch.max_retry_after_seconds ({settings.max_retry_after_seconds:g} s)",
                        http_status=outcome.status,
                    ), tries
                if tries > settings.max_retries:
                    return _Failure(
                        f"HTTP {outcome.status} after {tries} attempts", http_status=outcome.status
                    ), tries
                wait = asked if asked is not None else self._backoff * 2 ** (tries - 1)
            else:
                return outcome, tries
            # The whole host waits, not only this URL: a 429 or 503 is about the server.
            host = self._host(url.host)
            host.next_start = max(host.next_start, asyncio.get_running_loop().time() + wait)

    def _host(self, name: str) -> _Host:
        host = self._hosts.get(name)
        if host is None:
            settings = self._settings
            host = _Host(asyncio.Semaphore(max(1, settings.per_host_concurrency)), settings.min_delay_seconds)
            self._hosts[name] = host
        return host

    @contextlib.asynccontextmanager
    async def _slot(self, name: str) -> AsyncIterator[None]:
        """A turn to send one request to host ``name``: a per-host slot, the host's delay since
        its last start, then a slot of the total. The host slot comes first so that a request
        waiting on a busy host holds none of the total; the total is taken before the start
        time is stamped so that two starts to one host are never closer than the delay."""
        host = self._host(name)
        loop = asyncio.get_running_loop()
        async with host.slots:
            async with host.turn:
                while (wait := host.next_start - loop.time()) > 0:
                    await asyncio.sleep(wait)  # next_start may move while we sleep (a Retry-After)
                await self._slots.acquire()
                host.next_start = loop.time() + host.delay
            try:
                yield
            finally:
                self._slots.release()

    async def _request(
        self, url: httpx.URL, headers: dict[str, str], accept: tuple[str, ...] | None
    ) -> _Reply | _Failure:
        """Send one GET and read what we take of its response, within the whole-request deadline."""
        timeout = self._settings.timeout_seconds
        async with self._slot(url.host):
            self._stats.requests += 1
            try:
                async with asyncio.timeout(timeout):
                    async with self._client.stream("GET", url, headers=headers) as response:
                        self._stats.responses[response.status_code] += 1
                        if response.status_code == 304:
                            self._stats.not_modified += 1
                        return await self._read(response, accept)
            except (TimeoutError, httpx.TimeoutException):
                self._stats.transport_errors += 1
                # Not asked again: a server this slow would hold a slot for each retry.
                return _Failure(f"timed out after {timeout:g} s (fetch.timeout_seconds)")
            except httpx.TransportError as error:
                self._stats.transport_errors += 1
                return _Failure(f"connection failed: {_describe(error)}", retry=True)
            except httpx.InvalidURL as error:
                return _Failure(f"not a valid URL: {error}")

    async def _read(self, response: httpx.Response, accept: tuple[str, ...] | None) -> _Reply:
        status = response.status_code
        headers = response.headers
        if not 200 <= status < 300:
            return _Reply(status, headers)  # redirects, 304 and errors: the body is never needed
        media_type, charset = media_type_of(headers.get("content-type"))
        if accept is not None and not _accepted(media_type, accept):
            if accept == PAGE_TYPES:
                refusal = f"not an HTML page: {media_type or 'no Content-Type'}"
            else:
                refusal = f"content type not taken: {media_type or 'no Content-Type'}"
            return _Reply(status, headers, media_type=media_type, charset=charset, refusal=refusal)
        limit = self._settings.max_body_bytes
        truncate = accept is None
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit and not truncate:
            return _Reply(
                status,
                headers,
                media_type=media_type,
                charset=charset,
                refusal=f"body of {int(declared)} bytes is over fetch.max_body_bytes ({limit})",
            )
        decoder = _decoder_for(headers.get("content-encoding", ""))
        if decoder is None:
            return _Reply(
                status,
                headers,
                media_type=media_type,
                charset=charset,
                refusal=f"unsupported Content-Encoding: {headers.get('content-encoding')}",
            )
        parts: list[bytes] = []
        size = 0
        too_large = False
        try:
            async for chunk in response.aiter_raw():
                self._stats.body_bytes += len(chunk)
                piece = decoder.feed(chunk, limit - size)
                parts.append(piece)
                size += len(piece)
                if size > limit:
                    too_large = True
                    break  # leaving the stream closes the connection: the rest is never read
            if not too_large:
                tail = decoder.end()
                parts.append(tail)
                size += len(tail)
                too_large = size > limit
        except zlib.error as error:
            return _Reply(
                status,
                headers,
                media_type=media_type,
                charset=charset,
                refusal=f"body does not decode ({headers.get('content-encoding')}): {error}",
            )
        body = b"".join(parts)
        if too_large:
            if not truncate:
                return _Reply(
                    status,
                    headers,
                    media_type=media_type,
                    charset=charset,
                    refusal=f"body is over fetch.max_body_bytes ({limit}) (decoded)",
                )
            body = body[:limit]
        return _Reply(status, headers, body, media_type, charset)

    async def _robots_of(self, url: httpx.URL) -> _Robots:
        """The robots.txt of the URL's origin, fetched once per origin; concurrent askers share the
        one fetch (shielded, so that one asker cancelled does not cancel it for the others)."""
        key = (url.scheme, url.host, url.port)
        task = self._robots.get(key)
        if task is None:
            robots_url = httpx.URL(scheme=url.scheme, host=url.host, port=url.port, path="/robots.txt")
            task = asyncio.ensure_future(self._load_robots(robots_url))
            self._robots[key] = task
        return await asyncio.shield(task)

    async def _load_robots(self, robots_url: httpx.URL) -> _Robots:
        self._stats.robots_files += 1
        origin = f"{robots_url.scheme}://{robots_url.netloc.decode('ascii')}"
        result = await self._follow(str(robots_url), None, None, robots=False)
        code = result.http_status
        # Any 2xx is the rules, an empty one too (then nothing is disallowed).
        if result.status is FetchStatus.OK or (code is not None and 200 <= code < 300):
            parser = urllib.robotparser.RobotFileParser(str(robots_url))
            parser.parse(result.body.decode("utf-8", errors="replace").splitlines())
            delay = parser.crawl_delay(self._settings.user_agent)
            if delay is not None:
                host = self._host(robots_url.host)
                # A hostile Crawl-delay must not stall the run: it is capped like a Retry-After.
                asked = min(float(delay), self._settings.max_retry_after_seconds)
                host.delay = max(host.delay, asked)
            return _Robots(parser=parser)
        if code is not None and 400 <= code < 500 and code != 429:
            return _Robots()  # RFC 9309: robots.txt "unavailable" -> everything allowed
        # RFC 9309: "unreachable" (5xx, no answer) -> assume complete disallow.
        why = result.reason or f"HTTP {code}"
        return _Robots(deny_reason=f"robots.txt of {origin} unreachable ({why}): treated as disallow all")


def _port_of(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _describe(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _conditional_headers(validators: Validators | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if validators is not None:
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
    return headers


def _result(url: str, final: str, reply: _Reply, sent: Validators | None, attempts: int) -> FetchResult:
    status = reply.status
    if status == 304:
        if sent is None or (sent.etag is None and sent.last_modified is None):
            return FetchResult(
                url,
                final,
                FetchStatus.SKIPPED,
                status,
                reason="HTTP 304 to a request that was not conditional",
                attempts=attempts,
            )
        # A 304 may carry newer validators; otherwise those sent still hold.
        validators = Validators(
            reply.headers.get("etag") or sent.etag, reply.headers.get("last-modified") or sent.last_modified
        )
        return FetchResult(
            url, final, FetchStatus.NOT_MODIFIED, status, validators=validators, attempts=attempts
        )
    if status in GONE_STATUSES:
        return FetchResult(
            url, final, FetchStatus.GONE, status, reason=f"HTTP {status} {_phrase(status)}", attempts=attempts
        )
    if not 200 <= status < 300:
        return FetchResult(
            url,
            final,
            FetchStatus.SKIPPED,
            status,
            reason=f"HTTP {status} {_phrase(status)}",
            attempts=attempts,
        )
    if reply.refusal is not None:
        return FetchResult(
            url,
            final,
            FetchStatus.SKIPPED,
            status,
            media_type=reply.media_type,
            charset=reply.charset,
            reason=reply.refusal,
            attempts=attempts,
        )
    if status == 204 or not reply.body:
        return FetchResult(
            url,
            final,
            FetchStatus.SKIPPED,
            status,
            media_type=reply.media_type,
            charset=reply.charset,
            reason=f"HTTP {status} with an empty body",
            attempts=attempts,
        )
    validators = Validators(reply.headers.get("etag"), reply.headers.get("last-modified"))
    return FetchResult(
        url,
        final,
        FetchStatus.OK,
        status,
        reply.body,
        reply.media_type,
        reply.charset,
        validators,
        attempts=attempts,
    )


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


# --- the synchronous facade -----------------------------------------------------------------


class Fetcher:
    """Fetches URLs politely and within bounds (see the module's docstring); close it, or use it
    as a context manager, to stop its thread and connections. robots.txt files and per-host
    delays are remembered for the Fetcher's life, across calls of :meth:`fetch_all`."""

    def __init__(self, settings: FetchSettings, *, backoff_seconds: float = BACKOFF_SECONDS) -> None:
        self.settings = settings
        self.stats = FetchStats()
        self._closed = False
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="qa-fetcher", daemon=True)
        self._thread.start()
        self._engine = asyncio.run_coroutine_threadsafe(
            self._make_engine(backoff_seconds), self._loop
        ).result()

    async def _make_engine(self, backoff_seconds: float) -> _Engine:
        # Built on the loop's thread: its semaphores and client belong to that loop.
        return _Engine(self.settings, self.stats, backoff_seconds)

    def fetch_all(self, requests: Iterable[FetchRequest]) -> Iterator[FetchResult]:
        """Fetch ``requests`` concurrently within the limits and yield each result as it
        completes (not in the order given). The iterable is read lazily; stopping early
        cancels what is still running."""
        if self._closed:
            raise RuntimeError("Fetcher is closed")
        done: queue.SimpleQueue[concurrent.futures.Future[FetchResult]] = queue.SimpleQueue()
        running: set[concurrent.futures.Future[FetchResult]] = set()
        window = max(1, self.settings.concurrency) * _WINDOW_PER_SLOT
        pending: Iterator[object] = iter(requests)
        exhausted = False
        try:
            while True:
                while not exhausted and len(running) < window:
                    request = next(pending, _END)
                    if request is _END:
                        exhausted = True
                        break
                    if not isinstance(request, FetchRequest):
                        raise TypeError(f"fetch_all takes FetchRequest objects, not {type(request).__name__}")
                    future = asyncio.run_coroutine_threadsafe(self._engine.fetch(request), self._loop)
                    future.add_done_callback(done.put)
                    running.add(future)
                if not running:
                    return
                future = done.get()
                running.discard(future)
                yield future.result()
        finally:
            for future in running:
                future.cancel()

    def fetch(self, request: FetchRequest) -> FetchResult:
        """Fetch one URL (a batch of one)."""
        return next(iter(self.fetch_all([request])))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._engine.aclose(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
