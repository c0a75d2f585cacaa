"""Reduce a User-Agent string to a few low-cardinality fields.

A full User-Agent string is a fingerprinting vector (versions, build ids, device models, installed
plug-ins); what analytics needs is the browser family and major version, the OS family, a device
class and whether the client is a bot. The raw string is never returned, nor any version beyond the
major one, nor the device brand or model.

Parsing uses ua-parser 1.0 with the ua-parser-builtins regexes. The fast resolvers (the
``ua-parser-rs`` Rust extension or ``google-re2``) are used when installed, otherwise the pure-Python
:class:`ua_parser.BasicResolver`, which tries the regexes in order and costs a few hundred
microseconds per string: a bounded LRU cache of *reduced* results keyed by the string absorbs that,
as the same few hundred agents make up most of the traffic. Only the domains needed are resolved:
the costly device domain is skipped when the cheap keyword check already says "bot".

>>> r = UserAgentReducer()
>>> r("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
...   "Chrome/120.0.6099.109 Safari/537.36").as_dict()
{'browser': 'Chrome', 'browser_major': '120', 'os': 'Windows', 'device': 'desktop', 'bot': False}
>>> r("curl/8.4.0").as_dict()
{'browser': 'curl', 'browser_major': '8', 'os': None, 'device': 'bot', 'bot': True}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import ua_parser
from ua_parser import Domain

from transforms.errors import ConfigError

__all__ = ["ReducedUserAgent", "UserAgentReducer"]

_MAX_UA_LENGTH: Final = 512  # real agents are far shorter; bounds regex time and cache memory
_MAX_FAMILY_LENGTH: Final = 40
_MAX_CACHE_SIZE: Final = 1 << 20

# Bots, crawlers, feed fetchers, HTTP libraries and scanners. "bot" needs care: "CUBOT" is a phone
# brand. Browsers never put a URL or an e-mail address in their agent string; automated clients do.
_BOT_RE: Final = re.compile(
    r"(?<!cu)bot\b|bot[/_-]|crawl|spider|slurp|https?://|@[a-z0-9-]+\.|feed|\brss\b|"
    r"curl|wget|python-requests|python-urllib|aiohttp|httpx|go-http-client|java/|libwww|"
    r"httpclient|okhttp|scrapy|headlesschrome|phantomjs|"
    r"sqlmap|nikto|nmap|masscan|zgrab|nuclei|wpscan|dirbuster|gobuster|zmeu|censys",
    re.IGNORECASE,
)
# A family must look like a product name; anything else (a regex capture that swept up a payload) is dropped.
_FAMILY_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9 ._()!+/-]*")
_MOBILE_OS: Final = frozenset(
    {
        "iOS",
        "Android",
        "Windows Phone",
        "Windows Mobile",
        "Windows CE",
        "BlackBerry OS",
        "Symbian OS",
        "KaiOS",
        "Firefox OS",
        "Tizen",
        "webOS",
    }
)
_DESKTOP_OS: Final = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Linux",
        "Ubuntu",
        "Debian",
        "Fedora",
        "CentOS",
        "Red Hat",
        "Gentoo",
        "Slackware",
        "Mandriva",
        "Kubuntu",
        "openSUSE",
        "Arch Linux",
        "SUSE",
        "Mint",
        "Chrome OS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
    }
)
_MOBILE_DEVICES: Final = frozenset({"iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone"})


@dataclass(frozen=True, slots=True)
class ReducedUserAgent:
    """What is kept of a User-Agent."""

    browser: str | None  # ua-parser family, e.g. "Chrome", "Mobile Safari", "Googlebot"
    browser_major: str | None  # digits only, e.g. "120"
    os: str | None  # OS family only, e.g. "Windows", "iOS"
    device: str  # "desktop" | "mobile" | "tablet" | "bot" | "other"
    bot: bool

    def as_dict(self) -> dict[str, str | bool | None]:
        """All fields by name (None kept, so the output schema is stable)."""
        return {
            "browser": self.browser,
            "browser_major": self.browser_major,
            "os": self.os,
            "device": self.device,
            "bot": self.bot,
        }


_UNKNOWN: Final = ReducedUserAgent(None, None, None, "other", False)


@lru_cache(maxsize=1)
def _resolver() -> ua_parser.Resolver:
    """One resolver for the process: loading and compiling the builtin regexes takes ~0.1 s."""
    return ua_parser.BestAvailableResolver(ua_parser.load_builtins())


def _family(value: str | None) -> str | None:
    if value is None or value == "Other" or len(value) > _MAX_FAMILY_LENGTH or not _FAMILY_RE.fullmatch(value):
        return None
    return value


def _major(value: str | None) -> str | None:
    return value if value is not None and value.isascii() and value.isdigit() and len(value) <= 6 else None


class UserAgentReducer:
    """``UserAgentReducer()(ua) -> ReducedUserAgent``; ``None``, ``""`` and ``"-"`` give all-unknown."""

    __slots__ = ("_reduce", "_resolve")

    def __init__(self, cache_size: int = 8192) -> None:
        """``cache_size``: distinct agents memoised (0 disables the cache)."""
        if type(cache_size) is not int or not 0 <= cache_size <= _MAX_CACHE_SIZE:
            raise ConfigError(f"cache_size must be an integer from 0 to {_MAX_CACHE_SIZE}, got {cache_size!r}")
        self._resolve = _resolver()
        self._reduce: Callable[[str], ReducedUserAgent] = (
            lru_cache(maxsize=cache_size)(self._reduce_uncached) if cache_size else self._reduce_uncached
        )

    def __call__(self, ua: str | None) -> ReducedUserAgent:
        """Reduce one User-Agent header value."""
        if not ua or ua == "-" or type(ua) is not str:
            return _UNKNOWN
        return self._reduce(ua[:_MAX_UA_LENGTH])

    def _reduce_uncached(self, ua: str) -> ReducedUserAgent:
        bot = _BOT_RE.search(ua) is not None
        resolve = self._resolve
        res = resolve(ua, Domain.USER_AGENT | Domain.OS)
        agent, os_ = res.user_agent, res.os
        browser = _family(agent.family) if agent else None
        major = _major(agent.major) if agent and browser else None
        os_family = _family(os_.family) if os_ else None
        if bot:
            return ReducedUserAgent(browser, major, os_family, "bot", True)
        device = resolve(ua, Domain.DEVICE).device
        if device is not None and device.family == "Spider":
            return ReducedUserAgent(browser, major, os_family, "bot", True)
        return ReducedUserAgent(browser, major, os_family, _device_class(ua, os_family, device), False)


def _device_class(ua: str, os_family: str | None, device: ua_parser.Device | None) -> str:
    family = device.family if device is not None else ""
    brand = (device.brand or "") if device is not None else ""
    if family in ("iPad", "Kindle") or "tablet" in f"{family} {brand}".lower() or "Tablet" in ua or "iPad" in ua:
        return "tablet"
    if family in _MOBILE_DEVICES or "Mobi" in ua:
        return "mobile"
    if os_family == "Android":
        # Android phones send "Mobile"; Android without it is a tablet (Google's own guidance).
        return "tablet"
    if os_family in _MOBILE_OS:
        return "mobile"
    if os_family in _DESKTOP_OS or (os_family is not None and os_family.startswith("Windows ")):
        return "desktop"  # "Windows 95", "Windows XP", ...: old families that ua-parser keeps versioned
    return "other"
