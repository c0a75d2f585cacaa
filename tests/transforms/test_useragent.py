"""transforms.useragent: reduction to browser/major/OS/device class/bot, never the raw string."""

from __future__ import annotations

import doctest
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import transforms.useragent
from transforms.errors import ConfigError
from transforms.useragent import ReducedUserAgent, UserAgentReducer

SHARED = Path(os.environ.get("PSEUDO_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
APACHE_LOG = SHARED / "logs" / "elastic-apache-access" / "apache_logs_2015-05-17_18"

reduce_ua = UserAgentReducer()

R = ReducedUserAgent
# (user agent, expected reduction)
CASES = [
    (  # Chrome on Windows
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 "
        "Safari/537.36",
        R("Chrome", "120", "Windows", "desktop", False),
    ),
    (  # Firefox on Linux
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        R("Firefox", "121", "Linux", "desktop", False),
    ),
    (  # Safari on macOS
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
        "Safari/605.1.15",
        R("Safari", "17", "Mac OS X", "desktop", False),
    ),
    (  # iPhone
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1 Mobile/15E148 Safari/604.1",
        R("Mobile Safari", "17", "iOS", "mobile", False),
    ),
    (  # iPad
        "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 "
        "Mobile/15E148 Safari/604.1",
        R("Mobile Safari", "16", "iOS", "tablet", False),
    ),
    (  # Android phone ("Mobile" token)
        "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile "
        "Safari/537.36",
        R("Chrome Mobile", "120", "Android", "mobile", False),
    ),
    (  # Android tablet (no "Mobile" token)
        "Mozilla/5.0 (Linux; Android 10; SM-T510) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36",
        R("Chrome", "120", "Android", "tablet", False),
    ),
    (  # CUBOT is a phone brand, not a bot
        "Mozilla/5.0 (Linux; Android 11; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.45 "
        "Mobile Safari/537.36",
        R("Chrome Mobile", "96", "Android", "mobile", False),
    ),
    (  # Googlebot: Spider device and keyword
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        R("Googlebot", "2", None, "bot", True),
    ),
    (  # bingbot
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        R("bingbot", "2", None, "bot", True),
    ),
    ("curl/8.4.0", R("curl", "8", None, "bot", True)),  # HTTP client
    ("Wget/1.21.4", R("Wget", "1", None, "bot", True)),  # HTTP client
    ("python-requests/2.31.0", R("Python Requests", "2", None, "bot", True)),  # library
    ("Go-http-client/1.1", R("Go-http-client", "1", None, "bot", True)),  # library
    ("sqlmap/1.7.2#stable (https://sqlmap.org)", R(None, None, None, "bot", True)),  # scanner unknown to ua-parser
    (  # scanner, no product family known to ua-parser
        "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:Port Check)",
        R(None, None, None, "bot", True),
    ),
    (  # Nmap NSE
        "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
        R(None, None, None, "bot", True),
    ),
    ("masscan/1.3 (https://github.com/robertdavidgraham/masscan)", R("masscan", "1", None, "bot", True)),  # scanner
    ("Mozilla/5.0 zgrab/0.x", R(None, None, None, "bot", True)),  # scanner
    (  # feed fetcher names itself with a URL
        "FeedBurner/1.0 (http://www.FeedBurner.com)",
        R(None, None, None, "bot", True),
    ),
    ("Mozilla/4.0", R(None, None, None, "other", False)),  # nothing recognisable
    ("-", R(None, None, None, "other", False)),  # Apache's "no header"
    ("", R(None, None, None, "other", False)),  # empty header
    (None, R(None, None, None, "other", False)),  # absent header
]


@pytest.mark.parametrize(("ua", "expected"), CASES)
def test_known_user_agents(ua: str | None, expected: ReducedUserAgent) -> None:
    """Each agent reduces to the expected family, major version, OS family, device class and bot flag."""
    assert reduce_ua(ua) == expected


def test_docstring_examples() -> None:
    """The module's examples run."""
    assert doctest.testmod(transforms.useragent).failed == 0


def test_as_dict_keeps_all_fields() -> None:
    """as_dict has a stable schema (None values kept)."""
    assert reduce_ua("curl/8.4.0").as_dict() == {
        "browser": "curl",
        "browser_major": "8",
        "os": None,
        "device": "bot",
        "bot": True,
    }


def test_results_are_cached() -> None:
    """A repeated agent returns the memoised object; cache_size=0 gives equal results."""
    ua = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
    cached = UserAgentReducer(cache_size=16)
    assert cached(ua) is cached(ua)
    assert UserAgentReducer(cache_size=0)(ua) == cached(ua)


def test_very_long_agent_is_cut_before_parsing() -> None:
    """A 100 kB agent (an attack payload) is parsed on its first 512 characters only."""
    ua = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0 " + "A" * 100_000
    assert reduce_ua(ua) == R("Firefox", "121", "Linux", "desktop", False)


@pytest.mark.parametrize(
    "cache_size",
    [-1, "8192", 1.5, True, 1 << 21],  # negative, string, float, bool, absurdly large
)
def test_invalid_cache_size(cache_size: object) -> None:
    """A bad cache_size stops start-up with a message naming it and the allowed range."""
    with pytest.raises(ConfigError, match="cache_size must be an integer from 0 to"):
        UserAgentReducer(cache_size=cache_size)  # type: ignore[arg-type]


def _check_reduction(ua: str, out: ReducedUserAgent) -> None:
    assert out.device in {"desktop", "mobile", "tablet", "bot", "other"}
    assert out.bot == (out.device == "bot")
    assert out.browser_major is None or re.fullmatch(r"[0-9]{1,6}", out.browser_major)
    for value in (out.browser, out.os):
        assert value is None or len(value) <= 40
    if len(ua) > 40:
        assert ua not in {out.browser, out.os, out.browser_major}


@given(st.text(max_size=300))
def test_arbitrary_text_never_echoes_the_agent(ua: str) -> None:
    """Any input reduces to bounded fields; a long agent is never returned as a field."""
    _check_reduction(ua, reduce_ua(ua))


@given(st.sampled_from([ua for ua, _ in CASES if ua]), st.text(max_size=80))
def test_suffixes_do_not_break_reduction(ua: str, suffix: str) -> None:
    """Appending junk to a real agent still gives a valid reduction."""
    _check_reduction(ua + suffix, reduce_ua(ua + suffix))


@pytest.mark.shared_data
@pytest.mark.skipif(not APACHE_LOG.is_file(), reason=f"shared log not found: {APACHE_LOG}")
def test_real_access_log_agents() -> None:
    """Every agent of the real Apache log reduces; most are classified and bots are found."""
    agents = {line.rsplit('"', 2)[-2] for line in APACHE_LOG.read_text(errors="replace").splitlines() if '"' in line}
    results = [reduce_ua(ua) for ua in agents]
    for ua, out in zip(agents, results, strict=True):
        _check_reduction(ua, out)
    devices = [out.device for out in results]
    assert devices.count("other") < len(results) * 0.1
    assert devices.count("bot") > 50
