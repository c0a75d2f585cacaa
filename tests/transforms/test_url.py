"""transforms.url: path templating, query allow-list and referrer host."""

from __future__ import annotations

import doctest
import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import transforms.url
from transforms.errors import ConfigError
from transforms.url import UrlMinimizer, referrer_host

SHARED = Path(os.environ.get("PSEUDO_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
APACHE_LOG = SHARED / "logs" / "elastic-apache-access" / "apache_logs_2015-05-17_18"

minimize = UrlMinimizer()

# (request target, expected path, expected kept parameters) with the default options
CASES: list[tuple[str | None, str | None, dict[str, str]]] = [
    ("/", "/", {}),  # root
    ("/about/team", "/about/team", {}),  # plain words stay
    ("/a/b/", "/a/b/", {}),  # trailing slash kept
    ("/users/12345/orders", "/users/{id}/orders", {}),  # numeric id
    ("/o/550E8400-E29B-41D4-A716-446655440000", "/o/{uuid}", {}),  # UUID, upper case
    ("/blob/3f2a9c0e1b7d", "/blob/{hex}", {}),  # 12 hex digits
    ("/blob/deadbeef", "/blob/deadbeef", {}),  # 8 hex digits: could be a word, stays
    ("/img/3f2a9c0e1b7d4f6a8c0e2b4d.png", "/img/{hex}.png", {}),  # extension of a templated name survives
    ("/invoices/42.pdf", "/invoices/{id}.pdf", {}),  # numeric name with extension
    ("/hosts/10.0.0.1/status", "/hosts/{ip}/status", {}),  # IPv4 literal
    ("/hosts/2001:db8::1", "/hosts/{ip}", {}),  # IPv6 literal
    ("/hosts/2001%3Adb8%3A%3A1", "/hosts/{ip}", {}),  # encoded IPv6 literal: judged decoded
    ("/u/bob@example.com/settings", "/u/{email}/settings", {}),  # e-mail
    ("/u/bob%40example.com", "/u/{email}", {}),  # encoded e-mail
    ("/reset/aGVsbG8gd29ybGQgdGhpcyBpcyBh", "/reset/{token}", {}),  # base64 token
    ("/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "/t/{token}", {}),  # JWT, short signature
    ("/k/sk_live_4eC39HqLyjWDarjtT1zdp7dc", "/k/{token}", {}),  # API key
    ("/k/AKIA2B7QX4MZK5RTV3NP", "/k/{token}", {}),  # AWS access key id (20 characters)
    ("/k/q3v8k1m0z7x2w9c4r6t5y8u1i0o3p2a7", "/k/{token}", {}),  # 32 lower case and digits
    ("/k/rB7kQwZpXmTnLvYs", "/k/{token}", {}),  # 16 characters, no digit
    ("/files/report-AKIA2B7QX4MZK5RTV3NP.pdf", "/files/{token}.pdf", {}),  # token joined to a word: whole run
    ("/u/ann-bob@example.com-x", "/u/{email}", {}),  # e-mail inside a segment
    ("/blog_bob@corp/cart", "/{email}/cart", {}),  # user@host without a top-level domain
    ("/articles/xvfb-firefox.html", "/articles/xvfb-firefox.html", {}),  # file name: the stem is judged
    ("/s?utm_content=rB7kQwZpXmTnLvYs", "/s", {"utm_content": "{token}"}),  # kept query value scrubbed
    ("/blog/logstash-monitorama-2013/", "/blog/logstash-monitorama-2013/", {}),  # slug with a year stays
    ("/invoice-20231105123.pdf", "/invoice-{id}.pdf", {}),  # long digit run inside a name
    ("/cart;jsessionid=0123ABCD/checkout", "/cart/checkout", {}),  # matrix parameter dropped
    ("/caf%C3%A9", "/caf%C3%A9", {}),  # kept segment in normal percent-encoding
    ("/café", "/caf%C3%A9", {}),  # same segment written raw
    ("/%2e%2e/%2e%2e/etc/passwd", "/../../etc/passwd", {}),  # traversal probe stays visible, decoded
    ("/" + "x" * 65, "/{long}", {}),  # over-long segment
    ("/1/2/3/4/5/6/7/8/9/10/11/12/13/14", "/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{...}", {}),
    ("/a" * 600, "/a" * 12 + "/{...}", {}),  # 1200-character path: templated without being cached
    ("/page#section-2", "/page", {}),  # fragment dropped
    ("http://shop.example:8080/p/1?utm_source=x", "/p/{id}", {"utm_source": "x"}),  # absolute-URI
    ("https://user:pw@host.example", "/", {}),  # absolute-URI without a path
    ("http://h?utm_source=x", "/", {"utm_source": "x"}),  # query right after the authority
    ("/s?q=my+secret&utm_campaign=spring-sale", "/s", {"utm_campaign": "spring-sale"}),  # q dropped
    ("/s?utm_medium=cpc+ads&utm_term=a%20b", "/s", {"utm_medium": "cpc ads", "utm_term": "a b"}),  # decoded
    ("/s?utm_source=bob%40example.com", "/s", {"utm_source": "{email}"}),  # value scrubbed
    ("/s?utm_AKIAIOSFODNN7EXAMPLE=1&utm_source=x", "/s", {"utm_source": "x"}),  # a name carrying a key: dropped
    ("/s?utm_bob%40example.com=1", "/s", {}),  # a name carrying an e-mail: dropped
    ("/s?utm_campaign=mbzeqNVE_PLnu_EDneS1fK", "/s", {"utm_campaign": "{token}"}),  # base64url with '_' runs
    ("/s?utm_a=1&utm_a=2", "/s", {"utm_a": "1"}),  # first occurrence wins
    ("/s?utm_x=" + "y" * 100, "/s", {"utm_x": "y" * 64}),  # value cut to 64 characters
    ("/s?utm_x=" + "a" * 1025, "/s", {"utm_x": "{long}"}),  # too long to scrub: replaced, not cut
    ("/s?utm_=&utm_b", "/s", {"utm_": "", "utm_b": ""}),  # empty values
    ("/s?UTM_SOURCE=x", "/s", {}),  # names are case-sensitive
    ("/s?utm_%E2%9C%93=x", "/s", {}),  # name outside [A-Za-z0-9_.-[]]
    ("*", "*", {}),  # OPTIONS *
    ("example.com:443", None, {}),  # CONNECT authority-form
    ("index.html", None, {}),  # not a request target
    ("", None, {}),  # empty
    ("-", None, {}),  # Apache's "no request"
    (None, None, {}),  # absent
]


@pytest.mark.parametrize(("url", "path", "params"), CASES)
def test_minimize_known_answers(url: str | None, path: str | None, params: dict[str, str]) -> None:
    """Each target gives the expected templated path and kept parameters."""
    assert minimize(url) == (path, params)


def test_docstring_examples() -> None:
    """The module's examples run."""
    assert doctest.testmod(transforms.url).failed == 0


@pytest.mark.parametrize(
    ("kwargs", "url", "expected"),
    [
        ({"query_allowlist": ()}, "/s?utm_source=x", ("/s", {})),  # empty allow-list keeps nothing
        ({"query_allowlist": ["page", "lang"]}, "/s?page=2&lang=de&x=1", ("/s", {"page": "2", "lang": "de"})),
        ({"query_allowlist": ["p?"]}, "/s?p1=a&p12=b", ("/s", {"p1": "a"})),  # ? matches one character
        ({"max_path_segments": 2}, "/a/b/c", ("/a/b/{...}", {})),  # fewer segments
        ({"max_segment_length": 8}, "/abcdefghi", ("/{long}", {})),  # shorter segments
        ({"max_value_length": 3}, "/?utm_a=abcdef", ("/", {"utm_a": "abc"})),  # shorter values
        ({"max_params": 1}, "/?utm_a=1&utm_b=2", ("/", {"utm_a": "1"})),  # fewer parameters
        ({"cache_size": 0}, "/users/1", ("/users/{id}", {})),  # no cache
    ],
)
def test_options(kwargs: dict[str, Any], url: str, expected: tuple[str, dict[str, str]]) -> None:
    """Each option changes what is kept."""
    assert UrlMinimizer(**kwargs)(url) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query_allowlist": "utm_*"}, "query_allowlist must be a list"),  # a bare string
        ({"query_allowlist": None}, "query_allowlist must be a list"),  # not a sequence
        ({"query_allowlist": [""]}, "query_allowlist entries must be"),  # empty glob
        ({"query_allowlist": ["utm_*;x"]}, "query_allowlist entries must be"),  # stray character
        ({"query_allowlist": [3]}, "query_allowlist entries must be"),  # not a string
        ({"max_path_segments": 0}, "max_path_segments must be an integer from 1 to 256"),  # zero
        ({"max_path_segments": "12"}, "max_path_segments must be an integer from 1 to 256"),  # string
        ({"cache_size": -1}, "cache_size must be an integer from 0 to"),  # negative
        ({"max_segment_length": 4}, "max_segment_length must be an integer from 8 to 1024"),  # too short
        ({"max_value_length": 0}, "max_value_length must be an integer from 1 to 1024"),  # zero
        ({"max_params": 100}, "max_params must be an integer from 1 to 64"),  # too many
    ],
)
def test_invalid_options(kwargs: dict[str, Any], message: str) -> None:
    """Bad options stop start-up with a message naming the parameter and the allowed values."""
    with pytest.raises(ConfigError, match=message):
        UrlMinimizer(**kwargs)


# (referrer, expected host)
REFERRERS = [
    ("https://www.example.com/path?q=1", "www.example.com"),  # ordinary
    ("https://User:pw@WWW.Example.COM:8443/x", "www.example.com"),  # userinfo, port, case
    ("http://example.com.", "example.com"),  # trailing dot of an FQDN
    ("http://example.com?x=1", "example.com"),  # query right after the host
    ("http://example.com\\evil.com/", "example.com"),  # backslash ends the authority, as in browsers
    ("//cdn.example.com/lib.js", "cdn.example.com"),  # protocol-relative
    ("android-app://com.google.android.gm/", "com.google.android.gm"),  # app referrer
    ("https://bücher.de/", "xn--bcher-kva.de"),  # IDN to punycode
    ("http://10.1.2.3/admin", "{ip}"),  # IPv4 host
    ("http://[2001:db8::1]:8080/", "{ip}"),  # IPv6 host
    ("http://2130706433/", "{ip}"),  # integer IPv4 form
    ("http://0x7f.1/", "{ip}"),  # hex IPv4 form
    ("http://10.1.2.3.nip.io/", "{ip}.nip.io"),  # dotted quad inside a wildcard-DNS name
    ("http://10-1-2-3.nip.io/", "{ip}.nip.io"),  # dashed form
    ("http://ec2-54-1-2-3.compute-1.amazonaws.com/", "{ip}.compute-1.amazonaws.com"),  # cloud host name
    ("http://0a010203.nip.io/", "{ip}.nip.io"),  # nip.io's hex form
    ("http://2001-db8--1.sslip.io/", "{ip}.sslip.io"),  # dashed IPv6
    ("https://sess-8f3a9c2e7b1d4f6a0c9e.example.com/", "sess-{token}.example.com"),  # session id label
    # a mixed-case base64url label, judged before lower-casing (lower-cased it read like words)
    ("https://miOr_ApNSEq-ounOKv-FAx.sessions.example.com/", "{token}.sessions.example.com"),
    ("https://WWW.Example.COM/", "www.example.com"),  # words in any case are kept, lower-cased
    ("https://rb7kqwzpxmtnlvys9d2f.example.com/", "{token}.example.com"),  # random label
    ("https://550e8400-e29b-41d4-a716-446655440000.example.com/", "{uuid}.example.com"),  # UUID label
    ("https://u12345678.example.com/", "u{id}.example.com"),  # long digit run
    ("https://www2.shop-2024.example.co.uk/", "www2.shop-2024.example.co.uk"),  # ordinary labels stay
    ("http://[not-an-ip]/", None),  # bad IPv6 literal
    ("http://exa mple.com/", None),  # space in host
    ("http:///path", None),  # empty host
    ("/relative/path", None),  # relative
    ("garbage", None),  # not a URL
    ("-", None),  # Apache's "no referrer"
    ("", None),  # empty
    (None, None),  # absent
]


@pytest.mark.parametrize(("referrer", "host"), REFERRERS)
def test_referrer_host(referrer: str | None, host: str | None) -> None:
    """Only the lower-cased host of an absolute referrer is kept; IP hosts become {ip}."""
    assert referrer_host(referrer) == host


# --- properties ------------------------------------------------------------------------------------

segment_text = st.text(st.characters(codec="utf-8", exclude_characters="/?#"), max_size=30)
paths = st.lists(segment_text, max_size=16).map(lambda segs: "/" + "/".join(segs))


@given(paths)
def test_templating_is_idempotent_and_bounded(path: str) -> None:
    """Templating a templated path changes nothing, and the segment count stays bounded."""
    once, _ = minimize(path)
    assert once is not None
    assert minimize(once) == (once, {})
    assert once.count("/") <= 13  # 12 segments + "{...}"


# "/", "?", "#" and "%" are legal in an address's local part but would not leave it one path segment.
segment_emails = st.emails().filter(lambda e: not set(e) & set("/?#%"))


@given(st.lists(segment_text, max_size=5), segment_emails, st.ip_addresses(v=4))
def test_email_and_ip_segments_never_survive(segs: list[str], email: str, addr: ipaddress.IPv4Address) -> None:
    """An e-mail or IPv4 segment is templated wherever it sits in the path."""
    path, _ = minimize("/" + "/".join([*segs, email, str(addr)]))
    assert path is not None
    assert email not in path
    assert not re.search(rf"(?<![\d.]){re.escape(str(addr))}(?![\d.])", path)


@pytest.mark.shared_data
@pytest.mark.skipif(not APACHE_LOG.is_file(), reason=f"shared log not found: {APACHE_LOG}")
def test_real_access_log_targets() -> None:
    """Every request target of the real Apache log minimizes without error and leaks no IP or e-mail."""
    targets = []
    for line in APACHE_LOG.read_text(errors="replace").splitlines():
        request = line.split('"')[1] if line.count('"') >= 2 else ""
        parts = request.split(" ")
        if len(parts) >= 2:
            targets.append(parts[1])
    assert len(targets) > 4000
    for target in targets:
        path, params = minimize(target)
        assert path is None or path.startswith(("/", "*"))
        assert not re.search(r"\d{1,3}(?:\.\d{1,3}){3}|@\w+\.\w+", path or "")
        assert params == {} or all(k.startswith("utm_") for k in params)
