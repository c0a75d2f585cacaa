"""Minimize request URLs and referrers for analytics.

:class:`UrlMinimizer` turns a logged request target into a *templated path* plus the few query
parameters an allow-list keeps:

- an absolute-URI (``http://host/p?q``) keeps only its path; the fragment always goes;
- path matrix parameters (``;jsessionid=...``) go;
- each segment is judged on its percent-decoded form and, when it looks like an identifier,
  replaced by a placeholder: all digits ``{id}``, UUID ``{uuid}``, 12+ hex digits ``{hex}``, an IPv4
  or IPv6 literal ``{ip}``, an e-mail address ``{email}`` (``user@host`` too), a JWT or a random-looking token of 16+
  characters (:func:`~transforms.scrub.looks_random`: an entropy test against a word model and a
  character-class test) ``{token}``; a file extension survives (``/img/{hex}.png``);
- a kept segment goes through :class:`~transforms.scrub.TextScrubber`, so an identifier inside it is
  replaced too (``/files/report-AKIAIOSFODNN7EXAMPLE`` -> ``/files/report-{token}``); digit runs of 6+
  become ``{id}`` (order numbers, phone numbers, dates);
- a segment longer than ``max_segment_length`` becomes ``{long}`` (a JWT stays ``{token}``); segments past
  ``max_path_segments`` collapse into one ``{...}``;
- query parameters are dropped unless their name matches a glob of ``query_allowlist``; kept values
  are ``+``/percent-decoded, scrubbed with :class:`~transforms.scrub.TextScrubber` and cut to
  ``max_value_length`` characters (a decoded value over 1024 characters becomes ``{long}``).

Kept segments are written back percent-encoded in one normal form, so ``/caf%C3%A9`` and ``/café``
template alike. A target that is neither origin-form (``/...``), absolute-form nor ``*`` (an
authority-form ``CONNECT`` target or garbage) yields ``(None, {})``.

>>> UrlMinimizer()("http://shop.example/orders/12345/items/550e8400-e29b-41d4-a716-446655440000"
...                "?utm_source=news&email=bob@example.com#top")
('/orders/{id}/items/{uuid}', {'utm_source': 'news'})
>>> referrer_host("https://User:pw@WWW.Example.COM:8443/path?q=1")
'www.example.com'
>>> referrer_host("http://10-1-2-3.nip.io/"), referrer_host("https://sess-8f3a9c2e7b1d4f6a0c9e.example.com/")
('{ip}.nip.io', 'sess-{token}.example.com')
"""

from __future__ import annotations

import fnmatch
import re
import socket
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Final
from urllib.parse import quote, unquote, unquote_plus

from transforms.errors import ConfigError
from transforms.scrub import AWS_KEY_ID_RE, TextScrubber, looks_random

__all__ = ["UrlMinimizer", "referrer_host"]

_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_UUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]{12,}")
_IPV4_RE: Final = re.compile(r"(?<!\d)\d{1,3}(?:\.\d{1,3}){3}(?!\d)")
_EMAIL_RE: Final = re.compile(r"[^\s@/]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,15}\.[A-Za-z]{2,63}")
_JWT_RE: Final = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_\-+=.~]{16,}")
_EXT_RE: Final = re.compile(r"[A-Za-z0-9]{0,4}[A-Za-z][A-Za-z0-9]{0,4}")
_DIGIT_RUN_RE: Final = re.compile(r"\d{6,}")
# Characters a kept segment may carry unencoded: RFC 3986 pchar minus ";" (matrix params are gone)
# and "%" (re-encoded), plus "{}" for our placeholders.
_SEGMENT_SAFE: Final = "!$&'()*+,=:@-._~{}"
_SAFE_SEGMENT_RE: Final = re.compile(r"[A-Za-z0-9!$&'()*+,=:@._~{}-]*")
_QUERY_KEY_RE: Final = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,64}")
_GLOB_RE: Final = re.compile(r"[A-Za-z0-9_.\-\[\]*?]{1,64}")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
_HOST_RE: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*")
_DOTTED_NUMERIC_RE: Final = re.compile(r"[0-9.]+|0x[0-9a-f.x]+")
# Four dash-separated numbers up to 255 inside a host label: "10-1-2-3", "ip-10-1-2-3", "ec2-54-1-2-3".
_DASHED_IPV4_RE: Final = re.compile(r"(?<!\d)(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)-){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d)")
_HEX_IPV4_RE: Final = re.compile(r"(?=[a-f]*\d)[0-9a-f]{8}")
_HOST_SCRUB: Final = TextScrubber()
_MAX_CACHE_SIZE: Final = 1 << 20
_MAX_CACHED_PATH: Final = 1024
_MAX_SCRUBBED_VALUE: Final = 1024


def _is_ipv6(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, text.strip("[]").split("%", 1)[0])
    except (OSError, ValueError, UnicodeError):
        return False
    return True


def _classify(s: str, tokens: bool = True) -> str | None:
    """Placeholder for an identifier-like (decoded) segment, else None; ``tokens``: try the random-token test."""
    if s.isdigit() and s.isascii():
        return "{id}"
    if len(s) == 36 and _UUID_RE.fullmatch(s):
        return "{uuid}"
    if len(s) >= 12 and _HEX_RE.fullmatch(s):
        return "{hex}"
    if (":" in s and _is_ipv6(s)) or _IPV4_RE.search(s):
        return "{ip}"
    if "@" in s and _EMAIL_RE.search(s):
        return "{email}"
    if (
        tokens
        and len(s) >= 16
        and (_JWT_RE.fullmatch(s) or AWS_KEY_ID_RE.fullmatch(s) or (_TOKEN_RE.fullmatch(s) and looks_random(s)))
    ):
        return "{token}"
    return None


def _int_option(name: str, value: object, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _allowlist_matcher(patterns: object) -> Callable[[str], bool] | None:
    if isinstance(patterns, str) or not isinstance(patterns, Sequence):
        raise ConfigError(
            f"query_allowlist must be a list of parameter-name globs such as ['utm_*', 'page'], got {patterns!r}"
        )
    for pattern in patterns:
        if not isinstance(pattern, str) or not _GLOB_RE.fullmatch(pattern):
            raise ConfigError(
                "query_allowlist entries must be 1-64 characters from letters, digits, '_', '.', '-', "
                f"'[', ']' and the wildcards '*' and '?', got {pattern!r}"
            )
    if not patterns:
        return None
    regex = re.compile("|".join(fnmatch.translate(p) for p in patterns))
    return lambda key: regex.match(key) is not None


class UrlMinimizer:
    """``UrlMinimizer(...)(url) -> (templated_path | None, kept_query_params)``."""

    __slots__ = (
        "_allowed",
        "_max_params",
        "_max_segment_length",
        "_max_segments",
        "_max_value_length",
        "_scrub",
        "_template",
    )

    def __init__(
        self,
        query_allowlist: Sequence[str] = ("utm_*",),
        max_path_segments: int = 12,
        cache_size: int = 4096,
        *,
        max_segment_length: int = 64,
        max_value_length: int = 64,
        max_params: int = 16,
    ) -> None:
        """Validate the options (:class:`ConfigError` names the bad one).

        ``query_allowlist``: globs of parameter names kept (case-sensitive; empty keeps none).
        ``max_path_segments``: 1..256. ``cache_size``: distinct paths memoised, 0 disables.
        ``max_segment_length``: 8..1024 decoded characters. ``max_value_length``: 1..1024.
        ``max_params``: 1..64 kept parameters at most.
        """
        self._allowed = _allowlist_matcher(query_allowlist)
        self._max_segments = _int_option("max_path_segments", max_path_segments, 1, 256)
        cache_size = _int_option("cache_size", cache_size, 0, _MAX_CACHE_SIZE)
        self._max_segment_length = _int_option("max_segment_length", max_segment_length, 8, 1024)
        self._max_value_length = _int_option("max_value_length", max_value_length, 1, 1024)
        self._max_params = _int_option("max_params", max_params, 1, 64)
        self._scrub = TextScrubber()
        self._template: Callable[[str], str] = (
            lru_cache(maxsize=cache_size)(self._template_path) if cache_size else self._template_path
        )

    def __call__(self, url: str | None) -> tuple[str | None, dict[str, str]]:
        """Templated path and kept query parameters of one request target."""
        if not url or type(url) is not str or url == "-":
            return None, {}
        hash_at = url.find("#")
        if hash_at >= 0:
            url = url[:hash_at]
        path, sep, query = url.partition("?")
        if not path.startswith("/"):
            if path == "*":
                return "*", {}
            m = _SCHEME_RE.match(path)
            if m is None:
                return None, {}
            slash = path.find("/", m.end())
            path = path[slash:] if slash >= 0 else "/"
        params = self._params(query) if sep and query and self._allowed is not None else {}
        # Over-long paths (probes, payloads) bypass the cache so that they cannot fill its memory.
        template = self._template if len(path) <= _MAX_CACHED_PATH else self._template_path
        return template(path), params

    def _params(self, query: str) -> dict[str, str]:
        allowed = self._allowed
        out: dict[str, str] = {}
        if allowed is None:
            return out
        for pair in query.split("&"):
            raw_key, _, raw_value = pair.partition("=")
            if len(raw_key) > 3 * 64:
                continue  # no kept name is longer than 64 characters (_QUERY_KEY_RE), even once decoded
            key = unquote_plus(raw_key) if ("%" in raw_key or "+" in raw_key) else raw_key
            # A name is client text like a value: a glob such as utm_* also admits "utm_<token>", so a name
            # the scrubber would change is dropped whole (a placeholder name would say nothing useful).
            if key in out or not _QUERY_KEY_RE.fullmatch(key) or not allowed(key) or self._scrub(key) != key:
                continue
            # As for path segments: too long even at a third of its length, the value is not decoded at all.
            value = raw_value if len(raw_value) > 3 * _MAX_SCRUBBED_VALUE else unquote_plus(raw_value, errors="replace")
            if len(value) > _MAX_SCRUBBED_VALUE:
                out[key] = "{long}"  # cutting first could split an e-mail or token past recognition
            else:
                value = _CONTROL_RE.sub(" ", self._scrub(value))  # scrub before cutting, not after
                out[key] = value[: self._max_value_length]
            if len(out) >= self._max_params:
                break
        return out

    def _template_path(self, path: str) -> str:
        segments = path.split("/")[1:]
        overflow = len(segments) > self._max_segments
        if overflow:
            segments = segments[: self._max_segments]
        out = [self._template_segment(seg) for seg in segments]
        if overflow:
            out.append("{...}")
        return "/" + "/".join(out)

    def _template_segment(self, raw: str) -> str:
        semi = raw.find(";")
        if semi >= 0:
            raw = raw[:semi]
        if not raw:
            return raw
        if len(raw) > 12 * self._max_segment_length:
            # Decoding shortens a segment at most twelvefold (a 4-byte UTF-8 character is "%F0%90%80%80"; the bound
            # was 3x, and a templated path of such characters, once re-encoded, came back as "{long}": Hypothesis
            # found it), so this one is long whatever it decodes to; urllib's unquote walks every '%' in Python
            # (60,000 of them cost 23x a benign record).
            return "{long}"
        s = unquote(raw, errors="replace") if "%" in raw else raw
        if s.startswith("eyJ") and _JWT_RE.fullmatch(s):
            return "{token}"  # before the extension check: a short signature would pass for one
        if len(s) > self._max_segment_length:
            return "{long}"  # before the pattern checks, which need not then handle huge input
        # Extension first, so "/img/<digest>.png" keeps ".png" (a whole-name check would call it a token).
        stem, dot, ext = s.rpartition(".")
        has_ext = bool(dot and stem and _EXT_RE.fullmatch(ext))
        if has_ext and (placeholder := _classify(stem)) is not None:
            return f"{placeholder}.{ext}"
        # A file name whose stem is no token is not one with its extension either ("xvfb-firefox.html").
        placeholder = _classify(s, tokens=not has_ext)
        if placeholder is not None:
            return placeholder
        # An identifier inside a kept segment ("report-AKIA...", "sess-<token>", "blog_bob@corp": user@host
        # without a top-level domain, which the scrubber's loose e-mail rule takes).
        s = _DIGIT_RUN_RE.sub("{id}", self._scrub(s))
        return s if _SAFE_SEGMENT_RE.fullmatch(s) else quote(s, safe=_SEGMENT_SAFE)


@lru_cache(maxsize=4096)
def referrer_host(referrer: str | None) -> str | None:
    """Lower-cased host of an absolute referrer URL, with identifying labels replaced, or None.

    ``"-"``, ``""``, None, relative and unparseable referrers give None; userinfo and port are
    dropped; an IP-literal host (IPv4, bracketed IPv6, or a numeric form such as ``2130706433``)
    gives ``"{ip}"``; an internationalized host is returned in its ASCII (punycode) form.

    A referrer host is client-chosen too, and wildcard-DNS services and per-session subdomains put
    addresses and tokens into it. So its labels are scrubbed, not dropped: the registrable part that
    analytics wants (``example.com``) stays, and a label that carries an address (``10.1.2.3.nip.io``,
    ``10-1-2-3.nip.io``, ``ip-10-1-2-3``, ``2001-db8--1.sslip.io``, hex ``0a010203``), a long digit
    run, a UUID, a hex id or a random-looking token (:class:`~transforms.scrub.TextScrubber`) gives
    way to a placeholder: ``{ip}.nip.io``, ``{token}.example.com``. Words are kept.
    """
    if not referrer or type(referrer) is not str or referrer == "-":
        return None
    start = referrer.find("//")
    if start < 0 or (start > 0 and not _SCHEME_RE.fullmatch(referrer[: start + 2])):
        return None
    authority = referrer[start + 2 :]
    for stop in "/?#\\":
        authority = authority.partition(stop)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        end = host.find("]")
        return "{ip}" if end > 0 and _is_ipv6(host[1:end]) else None
    cased = host.partition(":")[0].rstrip(".")
    host = cased.lower()
    if not host or len(host) > 253:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if _DOTTED_NUMERIC_RE.fullmatch(host):
        return "{ip}"  # dotted quad, or the integer/hex/octal forms browsers also accept
    if not _HOST_RE.fullmatch(host):
        return None
    # Tokens are judged in the case the client sent: lower-cased, mixed-case base64 reads like words.
    return _scrub_host(cased if cased.isascii() else host)


def _scrub_host(host: str) -> str:
    """``host`` (valid, any case) lower-cased, with labels that carry an address or identifier as placeholders."""
    host = _HOST_SCRUB(host).lower()  # dotted quads ("10.1.2.3.nip.io"), UUIDs, hex ids, tokens
    labels = host.split(".")
    for i, label in enumerate(labels):
        if label.startswith("{") or (len(label) < 7 and not label.isdigit()):
            continue  # a placeholder already, or too short to hold an address ("1-2-3-4" is 7)
        if _DASHED_IPV4_RE.search(label) or ("-" in label and _is_ipv6(label.replace("-", ":"))):
            labels[i] = "{ip}"
        elif _HEX_IPV4_RE.fullmatch(label):
            labels[i] = "{ip}"  # nip.io's hex form of an IPv4 address
        else:
            labels[i] = _DIGIT_RUN_RE.sub("{id}", label)
    return ".".join(labels)
