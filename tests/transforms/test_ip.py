"""transforms.ip: strict parsing, scope classification and truncation, with ipaddress as the oracle."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.errors import ConfigError, Reason, RecordError
from transforms.ip import IPScope, IPTruncator, ParsedIP, parse_ip

S = IPScope

# (input, canonical text, version, scope)
PARSE_CASES = [
    ("81.2.69.160", "81.2.69.160", 4, S.PUBLIC),  # ordinary public IPv4
    ("0.0.0.0", "0.0.0.0", 4, S.UNSPECIFIED),  # unspecified  # noqa: S104 - data, not a bind address
    ("0.1.2.3", "0.1.2.3", 4, S.RESERVED),  # 0/8 "this network"
    ("10.0.0.1", "10.0.0.1", 4, S.PRIVATE),  # RFC 1918
    ("172.16.0.1", "172.16.0.1", 4, S.PRIVATE),  # RFC 1918, first of 172.16/12
    ("172.31.255.255", "172.31.255.255", 4, S.PRIVATE),  # RFC 1918, last of 172.16/12
    ("172.32.0.1", "172.32.0.1", 4, S.PUBLIC),  # just past 172.16/12
    ("192.168.1.1", "192.168.1.1", 4, S.PRIVATE),  # RFC 1918
    ("100.64.0.1", "100.64.0.1", 4, S.CGNAT),  # shared address space, first
    ("100.127.255.254", "100.127.255.254", 4, S.CGNAT),  # shared address space, last
    ("100.128.0.1", "100.128.0.1", 4, S.PUBLIC),  # just past 100.64/10
    ("127.0.0.1", "127.0.0.1", 4, S.LOOPBACK),  # loopback
    ("127.255.255.254", "127.255.255.254", 4, S.LOOPBACK),  # all of 127/8 is loopback
    ("169.254.169.254", "169.254.169.254", 4, S.LINK_LOCAL),  # cloud metadata address
    ("192.0.0.8", "192.0.0.8", 4, S.RESERVED),  # IETF protocol assignments
    ("192.0.2.1", "192.0.2.1", 4, S.DOCUMENTATION),  # TEST-NET-1
    ("198.51.100.7", "198.51.100.7", 4, S.DOCUMENTATION),  # TEST-NET-2
    ("203.0.113.255", "203.0.113.255", 4, S.DOCUMENTATION),  # TEST-NET-3
    ("192.88.99.1", "192.88.99.1", 4, S.RESERVED),  # deprecated 6to4 relay anycast
    ("198.18.0.1", "198.18.0.1", 4, S.RESERVED),  # benchmarking
    ("224.0.0.251", "224.0.0.251", 4, S.MULTICAST),  # mDNS
    ("239.255.255.250", "239.255.255.250", 4, S.MULTICAST),  # SSDP
    ("240.0.0.1", "240.0.0.1", 4, S.RESERVED),  # class E
    ("255.255.255.255", "255.255.255.255", 4, S.RESERVED),  # limited broadcast
    ("::", "::", 6, S.UNSPECIFIED),  # unspecified
    ("::1", "::1", 6, S.LOOPBACK),  # loopback
    ("2001:DB8::1", "2001:db8::1", 6, S.DOCUMENTATION),  # upper case is normalised
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", 6, S.DOCUMENTATION),  # full form compressed
    ("3fff::1", "3fff::1", 6, S.DOCUMENTATION),  # RFC 9637 documentation block
    ("2a00:1450:4001:82a::200e", "2a00:1450:4001:82a::200e", 6, S.PUBLIC),  # public IPv6
    ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1", 6, S.DOCUMENTATION),  # one zero group is not compressed
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", 6, S.DOCUMENTATION),  # first of equal zero runs compressed
    ("fd12:3456::1", "fd12:3456::1", 6, S.PRIVATE),  # unique local
    ("fe80::1", "fe80::1", 6, S.LINK_LOCAL),  # link-local
    ("fec0::1", "fec0::1", 6, S.RESERVED),  # deprecated site-local
    ("ff02::1", "ff02::1", 6, S.MULTICAST),  # all-nodes multicast
    ("2001::1", "2001::1", 6, S.RESERVED),  # Teredo lies in 2001::/23 (IETF protocol assignments)
    ("2002:cb00:7101::1", "2002:cb00:7101::1", 6, S.PUBLIC),  # 6to4 of a public address
    ("64:ff9b::808:808", "64:ff9b::808:808", 6, S.PUBLIC),  # NAT64 well-known prefix
    ("64:ff9b:1::1", "64:ff9b:1::1", 6, S.PRIVATE),  # local-use NAT64
    ("4000::1", "4000::1", 6, S.RESERVED),  # outside 2000::/3: unallocated
    ("::ffff:81.2.69.160", "81.2.69.160", 4, S.PUBLIC),  # IPv4-mapped normalised to IPv4
    ("::FFFF:10.1.2.3", "10.1.2.3", 4, S.PRIVATE),  # mapped, upper case, keeps its IPv4 scope
    ("::ffff:5102:45a0", "81.2.69.160", 4, S.PUBLIC),  # mapped written in hex
    ("::1.2.3.4", "::102:304", 6, S.RESERVED),  # deprecated IPv4-compatible: stays IPv6, hex tail
]


@pytest.mark.parametrize(("text", "canonical", "version", "scope"), PARSE_CASES)
def test_parse_ip_known_answers(text: str, canonical: str, version: int, scope: IPScope) -> None:
    """Each known address parses to its canonical text, version, packed bytes and scope."""
    ip = parse_ip(text)
    assert (ip.text, ip.version, ip.scope) == (canonical, version, scope)
    assert ip.packed == ipaddress.ip_address(canonical).packed
    assert ip.is_public == (scope is S.PUBLIC)


INVALID = [
    "010.1.1.1",  # leading zero: inet_aton reads it as octal 8
    "1.2.3.04",  # leading zero in the last octet
    "00.0.0.0",  # double zero
    "1.2.3",  # inet_aton short form
    "16909060",  # inet_aton integer form
    "0x7f.0.0.1",  # hex octet
    "256.1.1.1",  # octet > 255
    "1.2.3.4.5",  # five parts
    "1.2.3.",  # empty octet
    " 1.2.3.4",  # leading space: parsers strip, we do not guess
    "1.2.3.4\n",  # trailing newline
    "+1.2.3.4",  # sign
    "١.٢.٣.٤",  # Arabic-Indic digits are digits to str.isdigit, not to us
    "１.2.3.4",  # full-width digit
    "fe80::1%eth0",  # zone id
    "::ffff:01.2.3.4",  # leading zero in an embedded IPv4
    "1:2:3:4:5:6:7:8:9",  # nine groups
    "12345::1",  # five hex digits
    "1::2::3",  # two "::"
    "[::1]",  # brackets belong to URLs, not to addresses
    "::1\x00",  # embedded NUL
    "\ud800::1",  # lone surrogate
    "garbage",  # not an address
    "example.com",  # a host name
    "1.2.3.4:80",  # address with port
]


@pytest.mark.parametrize("text", INVALID)
def test_parse_ip_rejects(text: str) -> None:
    """Malformed or ambiguous spellings raise INVALID_IP, and the message does not quote the value."""
    with pytest.raises(RecordError) as info:
        parse_ip(text)
    assert info.value.reason is Reason.INVALID_IP
    assert info.value.field == "source_ip"
    assert text.strip() not in str(info.value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", Reason.MISSING_IP),  # empty field
        (None, Reason.MISSING_IP),  # absent field
        (16909060, Reason.WRONG_TYPE),  # a number is not an address text
        (b"1.2.3.4", Reason.WRONG_TYPE),  # bytes are not decoded here
    ],
)
def test_parse_ip_missing_and_wrong_type(value: object, reason: Reason) -> None:
    """Empty and non-string inputs get their own reason codes."""
    with pytest.raises(RecordError) as info:
        parse_ip(value)  # type: ignore[arg-type]
    assert info.value.reason is reason


def test_parse_ip_field_name_is_reported() -> None:
    """The caller's field name, not the value, ends up in the error."""
    with pytest.raises(RecordError) as info:
        parse_ip("999.1.1.1", field="x_forwarded_for")
    assert str(info.value) == "invalid_ip: x_forwarded_for"


def test_parsed_ip_is_frozen() -> None:
    """A parsed address cannot be altered after validation."""
    ip = parse_ip("81.2.69.160")
    with pytest.raises(AttributeError):
        ip.text = "10.0.0.1"  # type: ignore[misc]


# --- properties against ipaddress -----------------------------------------------------------------


def _expected_text(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


@given(st.ip_addresses())
def test_parse_ip_agrees_with_ipaddress_on_canonical_text(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """Every address, in compressed, exploded and upper-case spelling, parses to ipaddress's text."""
    expected = _expected_text(addr)
    for spelling in {str(addr), addr.exploded, str(addr).upper()}:
        ip = parse_ip(spelling)
        assert ip.text == expected
        assert ip.packed == ipaddress.ip_address(expected).packed
        assert ip.version == ipaddress.ip_address(expected).version


@given(st.text(alphabet="0123456789abcdefABCDEF:.%x ", max_size=45))
def test_parse_ip_validity_agrees_with_ipaddress(text: str) -> None:
    """Accepted text is valid to ipaddress with the same meaning; valid text without a zone id is accepted."""
    try:
        oracle: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(text)
    except ValueError:
        oracle = None
    try:
        ip: ParsedIP | None = parse_ip(text)
    except RecordError:
        ip = None
    if ip is not None:
        assert oracle is not None
        assert ip.text == _expected_text(oracle)
    elif oracle is not None:
        assert "%" in text  # the only spelling ipaddress accepts and we refuse: a zone id


# The scope specification, first match wins; IPv4 defaults to PUBLIC.
SCOPE_SPEC = [
    (ipaddress.ip_network(net), scope)
    for net, scope in [
        ("0.0.0.0/32", S.UNSPECIFIED),
        ("0.0.0.0/8", S.RESERVED),
        ("10.0.0.0/8", S.PRIVATE),
        ("100.64.0.0/10", S.CGNAT),
        ("127.0.0.0/8", S.LOOPBACK),
        ("169.254.0.0/16", S.LINK_LOCAL),
        ("172.16.0.0/12", S.PRIVATE),
        ("192.0.0.0/24", S.RESERVED),
        ("192.0.2.0/24", S.DOCUMENTATION),
        ("192.88.99.0/24", S.RESERVED),
        ("192.168.0.0/16", S.PRIVATE),
        ("198.18.0.0/15", S.RESERVED),
        ("198.51.100.0/24", S.DOCUMENTATION),
        ("203.0.113.0/24", S.DOCUMENTATION),
        ("224.0.0.0/4", S.MULTICAST),
        ("240.0.0.0/4", S.RESERVED),
        ("0.0.0.0/0", S.PUBLIC),
        ("::/128", S.UNSPECIFIED),
        ("::1/128", S.LOOPBACK),
        ("64:ff9b::/96", S.PUBLIC),
        ("64:ff9b:1::/48", S.PRIVATE),
        ("2001:db8::/32", S.DOCUMENTATION),
        ("2001::/23", S.RESERVED),
        ("3fff::/20", S.DOCUMENTATION),
        ("2000::/3", S.PUBLIC),
        ("fc00::/7", S.PRIVATE),
        ("fe80::/10", S.LINK_LOCAL),
        ("ff00::/8", S.MULTICAST),
        ("::/0", S.RESERVED),
    ]
]


def _spec_scope(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> IPScope:
    return next(scope for net, scope in SCOPE_SPEC if addr.version == net.version and addr in net)


def _in(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> st.SearchStrategy[ipaddress._BaseAddress]:
    cls = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
    return st.integers(int(net.network_address), int(net.broadcast_address)).map(cls)


# Uniform addresses almost never land in small special blocks: draw from each block too.
addresses = st.one_of(st.ip_addresses(), st.sampled_from([net for net, _ in SCOPE_SPEC]).flatmap(_in))


@given(addresses)
def test_scope_matches_specification(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """The fast scope tables agree with the network list above for any address."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    assert parse_ip(str(addr)).scope is _spec_scope(addr)


@given(addresses)
def test_never_public_when_ipaddress_says_not_global(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """Fail closed: nothing ipaddress considers non-global is ever classified public (and so geolocated)."""
    ip = parse_ip(str(addr))
    oracle = ipaddress.ip_address(ip.text)
    if not oracle.is_global or oracle.is_multicast:
        assert ip.scope is not S.PUBLIC


# --- truncation -----------------------------------------------------------------------------------

# (address, ipv4_prefix, ipv6_prefix, expected)
TRUNCATE_CASES = [
    ("81.2.69.160", 24, 48, "81.2.69.0/24"),  # default IPv4
    ("81.2.69.160", 16, 48, "81.2.0.0/16"),  # byte boundary
    ("81.2.69.160", 20, 48, "81.2.64.0/20"),  # inside an octet
    ("81.2.69.160", 32, 48, "81.2.69.160/32"),  # keep everything
    ("81.2.69.160", 0, 48, "0.0.0.0/0"),  # keep nothing
    ("::ffff:81.2.69.160", 24, 48, "81.2.69.0/24"),  # mapped address truncated as IPv4
    ("2a00:1450:4001:82a::200e", 24, 48, "2a00:1450:4001::/48"),  # default IPv6
    ("2a00:1450:4001:82a::200e", 24, 56, "2a00:1450:4001:800::/56"),  # inside a group
    ("2a00:1450:4001:82a::200e", 24, 64, "2a00:1450:4001:82a::/64"),  # /64 subnet
    ("2a00:1450:4001:82a::200e", 24, 128, "2a00:1450:4001:82a::200e/128"),  # keep everything
    ("2a00:1450:4001:82a::200e", 24, 0, "::/0"),  # keep nothing
    ("2002:cb00:7101::1", 24, 48, "2002:cb00:7100::/40"),  # 6to4: only 24 bits of the IPv4 survive
    ("2002:cb00:7101::1", 16, 48, "2002:cb00::/32"),  # 6to4 follows the IPv4 prefix
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", 24, 128, "2001:0:4136:e378:8000:63bf:3fff:fd00/120"),  # Teredo
    ("64:ff9b::808:808", 24, 128, "64:ff9b::808:800/120"),  # NAT64 embeds the IPv4 in the last 32 bits
    ("::1.2.3.4", 24, 128, "::102:300/120"),  # IPv4-compatible, printed in hex like ipaddress
]


@pytest.mark.parametrize(("text", "p4", "p6", "expected"), TRUNCATE_CASES)
def test_truncate_known_answers(text: str, p4: int, p6: int, expected: str) -> None:
    """Truncation keeps the configured prefix and prints the network in canonical form."""
    assert IPTruncator(ipv4_prefix=p4, ipv6_prefix=p6)(parse_ip(text)) == expected


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ipv4_prefix": 33}, "ipv4_prefix"),  # above 32
        ({"ipv4_prefix": -1}, "ipv4_prefix"),  # negative
        ({"ipv4_prefix": "24"}, "ipv4_prefix"),  # a string from an untyped config
        ({"ipv4_prefix": True}, "ipv4_prefix"),  # bool is an int to Python, not to us
        ({"ipv6_prefix": 129}, "ipv6_prefix"),  # above 128
        ({"ipv6_prefix": 48.0}, "ipv6_prefix"),  # float
    ],
)
def test_truncator_rejects_bad_prefixes(kwargs: dict[str, object], name: str) -> None:
    """Configuration errors name the parameter and the allowed range."""
    with pytest.raises(ConfigError, match=rf"{name} must be an integer from 0 to \d+"):
        IPTruncator(**kwargs)  # type: ignore[arg-type]


def _embeds_ipv4(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return isinstance(addr, ipaddress.IPv6Address) and (
        addr in ipaddress.ip_network("2002::/16")
        or addr in ipaddress.ip_network("2001::/32")
        or addr in ipaddress.ip_network("64:ff9b::/96")
        or addr in ipaddress.ip_network("::/96")
    )


@given(addresses, st.integers(0, 32), st.integers(0, 128))
def test_truncation_contains_address_and_is_idempotent(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address, p4: int, p6: int
) -> None:
    """The network contains the address, equals ipaddress's network, and truncating it again changes nothing."""
    truncate = IPTruncator(p4, p6)
    ip = parse_ip(str(addr))
    out = truncate(ip)
    net = ipaddress.ip_network(out)
    assert ipaddress.ip_address(ip.text) in net
    assert str(net) == out  # canonical spelling
    if not _embeds_ipv4(addr):
        assert net == ipaddress.ip_network(f"{ip.text}/{p4 if ip.version == 4 else p6}", strict=False)
    assert truncate(parse_ip(out.split("/")[0])) == out


@given(addresses)
def test_default_truncation_hides_public_host(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """With default prefixes the output names the input address only when its host bits are already zero."""
    ip = parse_ip(str(addr))
    if not ip.is_public:
        return
    network_text, _, prefix = IPTruncator()(ip).partition("/")
    host_bits_zero = (
        int(ipaddress.ip_address(ip.text)) & ((1 << ((32 if ip.version == 4 else 128) - int(prefix))) - 1) == 0
    )
    assert (network_text == ip.text) == host_bits_zero
