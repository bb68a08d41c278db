"""Reading a catalog over HTTP, hostile by default: everything a server sends is bounded.

* only ``http``/``https`` URLs, without credentials in them (a token comes from ``token_env``);
* redirects and ``links.next`` must stay on the origin (scheme, host, port) of the location, so a
  catalog cannot send modelgit, or its token, anywhere else;
* a page is streamed and cut off at ``max_page_bytes`` of decoded bytes (modelgit inflates gzip
  itself, one bounded step at a time, so a small body cannot blow past the limit); at most
  ``max_pages`` pages; ``timeout`` per connect/read and ``deadline`` for the whole catalog, so a
  server that trickles bytes still ends;
* the environment's proxies and ``.netrc`` are not used (httpx ``trust_env=False``): a netrc
  password must not reach whatever host a registry file names.

Errors are :class:`~modelgit.errors.SourceError` naming the source and the page, never the token,
the URL's query string or the server's body.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from modelgit.errors import SourceError, printable, shown_url
from modelgit.sources._types import Limits
from modelgit.sources.catalog import CatalogEntry, parse_page


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


shown = shown_url  # a URL as errors show it: no credentials, no query string


def check_location(source: str, url: str) -> None:
    """SourceError unless ``url`` is an http(s) URL with a host and no credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise SourceError(source, f"{printable(url)[:200]!r} is not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise SourceError(source, f"a provider catalog is read over http or https, not {printable(parts.scheme)!r}"
                          if parts.scheme else f"{printable(url)[:200]!r} is not an http(s) URL",
                          hint="write its URL, e.g. https://openrouter.ai/api/v1/models")
    if not parts.hostname:
        raise SourceError(source, f"{shown(url)} names no host")
    if parts.username is not None or parts.password is not None:
        raise SourceError(source, f"{shown(url)}: credentials in the URL are refused",
                          hint="put the token in an environment variable and name it in token_env")


def fetch_catalog(source: str, location: str, *, token_env: str | None = None,
                  env: Mapping[str, str], limits: Limits, transport: Any = None) -> list[CatalogEntry]:
    """Every entry of the catalog at ``location``, following ``links.next``."""
    import httpx

    check_location(source, location)
    headers = {"Accept": "application/json", "Accept-Encoding": "gzip", "User-Agent": "modelgit check-upgrades"}
    if token_env:
        token = env.get(token_env)
        if not token:
            raise SourceError(source, f"the environment variable {token_env} (token_env) is not set",
                              hint=f"export {token_env}=… with the catalog's token, or remove token_env")
        headers["Authorization"] = f"Bearer {token}"
    origin = _origin(location)
    started = time.monotonic()
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    url: str | None = location
    page = 0
    with httpx.Client(timeout=httpx.Timeout(limits.timeout), follow_redirects=False, trust_env=False,
                      transport=transport, headers=headers) as client:
        while url is not None:
            page += 1
            if url in seen:
                raise SourceError(source, f"links.next of page {page - 1} goes back to {shown(url)}, a page read "
                                          "already; stopped")
            if page > limits.max_pages:
                raise SourceError(source, f"more than {limits.max_pages} pages; stopped at {shown(url)}",
                                  hint="a catalog this long is not what modelgit expects")
            seen.add(url)
            where = f"{shown(url)} (page {page})"
            body = _get(client, source, url, where, origin, started, limits)
            found, following = parse_page(body, source, where)
            entries.extend(found)
            if following is not None:
                following = urljoin(url, following)
                if _origin(following) != origin:
                    raise SourceError(source, f"links.next of {where} leads to another origin ({shown(following)}); "
                                              "refused", hint="a catalog's pages stay on the host it is read from")
            url = following
    return entries


def _decoder(source: str, where: str, encoding: str) -> Any:
    """A bounded gzip decoder for ``Content-Encoding: gzip``, None for no encoding; any other
    encoding is refused (only gzip is asked for)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    raise SourceError(source, f"{where} is sent with Content-Encoding {printable(encoding)[:40]!r}; modelgit reads "
                              "gzip or no encoding")


def _get(client: Any, source: str, url: str, where: str, origin: tuple[str, str, int | None], started: float,
         limits: Limits) -> bytes:
    import httpx

    for _ in range(limits.max_redirects + 1):
        left = limits.deadline - (time.monotonic() - started)
        if left <= 0:
            raise SourceError(source, f"{where}: no complete answer within {limits.deadline:g} s")
        try:
            with client.stream("GET", url, timeout=httpx.Timeout(min(limits.timeout, left))) as response:
                if response.is_redirect:
                    target = urljoin(url, response.headers.get("location", ""))
                    if _origin(target) != origin:
                        raise SourceError(source, f"{where} redirects to another origin ({shown(target)}); refused",
                                          hint="a catalog is read from the host its location names")
                    url = target
                    continue
                if response.status_code != 200:
                    phrase = f" {printable(response.reason_phrase)[:60]}" if response.reason_phrase else ""
                    raise SourceError(source, f"{where} answered HTTP {response.status_code}{phrase}",
                                      hint="check the location and token_env; a 401/403 wants a token")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limits.max_page_bytes:
                    raise SourceError(source, f"{where} is {int(declared):,} bytes, over the limit of "
                                              f"{limits.max_page_bytes:,} bytes a page")
                decoder = _decoder(source, where, response.headers.get("content-encoding", ""))
                chunks: list[bytes] = []
                size = 0
                for raw in response.iter_raw():
                    # Decoded here, never more than one byte past the limit: httpx's own decoder
                    # would inflate a whole gzip chunk (a thousandfold) before we could count it.
                    chunk = decoder.decompress(raw, limits.max_page_bytes - size + 1) if decoder else raw
                    size += len(chunk)
                    if size > limits.max_page_bytes:
                        raise SourceError(source, f"{where} is over the limit of {limits.max_page_bytes:,} "
                                                  "bytes a page; stopped reading")
                    if time.monotonic() - started > limits.deadline:
                        raise SourceError(source, f"{where}: no complete answer within {limits.deadline:g} s")
                    chunks.append(chunk)
                if decoder is not None and not decoder.eof:
                    raise SourceError(source, f"{where}: the gzip body ends early")
                return b"".join(chunks)
        except httpx.TimeoutException:
            raise SourceError(source, f"{where}: no answer within {limits.timeout:g} s",
                              hint="the catalog is slow or unreachable; the next run tries again") from None
        except zlib.error as exc:
            raise SourceError(source, f"{where}: the gzip body is corrupt ({exc})") from None
        except httpx.HTTPError as exc:  # connection refused, TLS, protocol errors
            reason = printable(str(exc))[:200] or type(exc).__name__
            raise SourceError(source, f"{where}: cannot read it: {reason}") from None
    raise SourceError(source, f"{where}: more than {limits.max_redirects} redirects; stopped")
