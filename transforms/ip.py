"""Strict IP parsing, scope classification and prefix truncation.

The per-event path avoids the :mod:`ipaddress` module (4-7 us per call): a dotted quad is parsed
with one ``split`` and four dict look-ups, IPv6 goes through ``socket.inet_pton``. Results are
memoised in a bounded LRU cache because a client address repeats across its requests.

Parsing is deliberately stricter than ``inet_aton``: octets with leading zeros (``010.1.1.1``),
short forms (``10.1``), hex/octal octets, surrounding whitespace and IPv6 zone ids (``fe80::1%eth0``)
are rejected. ``inet_aton`` reads ``010`` as octal 8, so accepting it would let one client appear as
two different addresses (a classic allow-list and rate-limit bypass); the other forms are never
written by web servers or sshd, so a record carrying them is malformed or forged.

Known answers (``parse_ip(text).text, .scope`` and ``IPTruncator()(parse_ip(text))``):

>>> parse_ip("203.0.113.7").scope.value
'documentation'
>>> parse_ip("::FFFF:198.51.100.1").text
'198.51.100.1'
>>> parse_ip("2001:0DB8:0000:0000:0000:0000:0000:0001").text
'2001:db8::1'
>>> IPTruncator()(parse_ip("81.2.69.160"))
'81.2.69.0/24'
>>> IPTruncator()(parse_ip("2a00:1450:4001:82a::200e"))
'2a00:1450:4001::/48'
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from transforms.errors import ConfigError, Reason, RecordError

__all__ = ["IPScope", "IPTruncator", "ParsedIP", "parse_ip"]

_AF_INET6 = socket.AF_INET6
_inet_pton = socket.inet_pton
_inet_ntop = socket.inet_ntop

# "0".."255" only: one dict look-up rejects leading zeros, signs, spaces, non-ASCII digits and > 255.
_OCTET: dict[str, int] = {str(i): i for i in range(256)}
_V4_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"
_MAX_V6_TEXT = 45  # "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
_PARSE_CACHE_SIZE = 65536


class IPScope(StrEnum):
    """Where an address is routable; only :attr:`PUBLIC` addresses identify an Internet client."""

    PUBLIC = "public"
    PRIVATE = "private"  # RFC 1918, fc00::/7 (ULA), 64:ff9b:1::/48 (local-use NAT64)
    LOOPBACK = "loopback"  # 127/8, ::1
    LINK_LOCAL = "link_local"  # 169.254/16, fe80::/10
    CGNAT = "cgnat"  # 100.64/10 (RFC 6598 shared address space)
    DOCUMENTATION = "documentation"  # 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
    MULTICAST = "multicast"  # 224/4, ff00::/8
    RESERVED = "reserved"  # everything IANA sets aside or has not allocated for unicast
    UNSPECIFIED = "unspecified"  # 0.0.0.0, ::


@dataclass(frozen=True, slots=True)
class ParsedIP:
    """A validated address.

    ``text`` is canonical: dotted-quad IPv4, RFC 5952 compressed lower-case IPv6, with an
    IPv4-mapped ``::ffff:a.b.c.d`` normalised to IPv4 (so both spellings pseudonymize alike and
    flat MMDBs, which do not alias the mapped range, find it). ``packed`` is 4 or 16 bytes.
    """

    text: str
    version: int
    packed: bytes
    scope: IPScope

    @property
    def is_public(self) -> bool:
        """True for globally routable unicast addresses: the only ones worth geolocating."""
        return self.scope is IPScope.PUBLIC


# --- scope tables ---------------------------------------------------------------------------------
# IPv4: one entry per first octet; None means "look at the next octets" (see _scope_v4).
_V4_FIRST: list[IPScope | None] = [IPScope.PUBLIC] * 256
for _a in (0, 100, 169, 172, 192, 198, 203):
    _V4_FIRST[_a] = None
_V4_FIRST[10] = IPScope.PRIVATE
_V4_FIRST[127] = IPScope.LOOPBACK
for _a in range(224, 240):
    _V4_FIRST[_a] = IPScope.MULTICAST
for _a in range(240, 256):  # 240/4 "future use" and 255.255.255.255 broadcast
    _V4_FIRST[_a] = IPScope.RESERVED
_V4_FIRST_T = tuple(_V4_FIRST)
del _V4_FIRST, _a


def _scope_v4(a: int, b: int, c: int, d: int) -> IPScope:
    scope = _V4_FIRST_T[a]
    if scope is not None:
        return scope
    if a == 0:
        return IPScope.UNSPECIFIED if (b | c | d) == 0 else IPScope.RESERVED  # 0/8 "this network"
    if a == 100:
        return IPScope.CGNAT if 64 <= b <= 127 else IPScope.PUBLIC
    if a == 169:
        return IPScope.LINK_LOCAL if b == 254 else IPScope.PUBLIC
    if a == 172:
        return IPScope.PRIVATE if 16 <= b <= 31 else IPScope.PUBLIC
    if a == 192:
        if b == 168:
            return IPScope.PRIVATE
        if b == 0:
            if c == 2:
                return IPScope.DOCUMENTATION
            if c == 0:  # 192.0.0/24 IETF protocol assignments
                return IPScope.RESERVED
        elif b == 88 and c == 99:  # 192.88.99/24 deprecated 6to4 relay anycast (RFC 7526)
            return IPScope.RESERVED
        return IPScope.PUBLIC
    if a == 198:
        if b in (18, 19):  # 198.18/15 benchmarking (RFC 2544)
            return IPScope.RESERVED
        return IPScope.DOCUMENTATION if b == 51 and c == 100 else IPScope.PUBLIC
    # a == 203
    return IPScope.DOCUMENTATION if b == 0 and c == 113 else IPScope.PUBLIC


def _scope_v6(p: bytes) -> IPScope:
    b0 = p[0]
    if 0x20 <= b0 <= 0x3F:  # 2000::/3, the only range allocated for global unicast
        if b0 == 0x20 and p[1] == 0x01:
            if p[2] == 0x0D and p[3] == 0xB8:
                return IPScope.DOCUMENTATION  # 2001:db8::/32
            if p[2] < 0x02:
                return IPScope.RESERVED  # 2001::/23 IETF protocol assignments (Teredo, ORCHID, ...)
        elif b0 == 0x3F and p[1] == 0xFF and p[2] < 0x10:
            return IPScope.DOCUMENTATION  # 3fff::/20 (RFC 9637)
        return IPScope.PUBLIC
    if b0 == 0xFF:
        return IPScope.MULTICAST
    if b0 in (0xFC, 0xFD):
        return IPScope.PRIVATE
    if b0 == 0xFE:
        return IPScope.LINK_LOCAL if p[1] & 0xC0 == 0x80 else IPScope.RESERVED  # fec0::/10 site-local is gone
    if b0 == 0 and p[1] == 0:
        if p == b"\x00" * 16:
            return IPScope.UNSPECIFIED
        if p == b"\x00" * 15 + b"\x01":
            return IPScope.LOOPBACK
    elif b0 == 0 and p[1] == 0x64 and p[2] == 0xFF and p[3] == 0x9B:
        if p[4:12] == b"\x00" * 8:
            return IPScope.PUBLIC  # 64:ff9b::/96 NAT64 well-known prefix: a real IPv4 host behind it
        if p[4:6] == b"\x00\x01":
            return IPScope.PRIVATE  # 64:ff9b:1::/48 local-use NAT64 (RFC 8215)
    return IPScope.RESERVED


# --- formatting -----------------------------------------------------------------------------------


def _format_v6(p: bytes) -> str:
    """RFC 5952 text, as ``ipaddress`` writes it (never the dotted tail glibc uses for ``::a.b.c.d``)."""
    words = [(p[i] << 8) | p[i + 1] for i in range(0, 16, 2)]
    best_start, best_len, start, length = -1, 0, -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if start < 0:
                start, length = i, 0
            length += 1
            if length > best_len:  # strictly longer: the first of equal runs wins (RFC 5952 4.2.3)
                best_start, best_len = start, length
        else:
            start = -1
    hexes = [f"{w:x}" for w in words]
    if best_len < 2:  # a single zero group is never compressed (RFC 5952 4.2.2)
        return ":".join(hexes)
    return ":".join(hexes[:best_start]) + "::" + ":".join(hexes[best_start + best_len :])


def _ntop6(packed: bytes) -> str:
    text = _inet_ntop(_AF_INET6, packed)
    # glibc prints ::a.b.c.d / ::ffff:a.b.c.d with a dotted tail; redo those rare cases in hex.
    return _format_v6(packed) if "." in text else text


# --- parsing --------------------------------------------------------------------------------------


def _invalid(field: str) -> RecordError:
    return RecordError(Reason.INVALID_IP, field=field)


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse(text: str) -> ParsedIP | None:
    """Parse, or return None for anything that is not one address (bounded cache, None included)."""
    parts = text.split(".")
    if len(parts) == 4 and ":" not in parts[0]:
        octet = _OCTET.get
        a, b, c, d = octet(parts[0]), octet(parts[1]), octet(parts[2]), octet(parts[3])
        if a is None or b is None or c is None or d is None:
            return None
        # The strict form is already canonical, so the input text is reused as is.
        return ParsedIP(text, 4, bytes((a, b, c, d)), _scope_v4(a, b, c, d))
    if ":" not in text or "%" in text or len(text) > _MAX_V6_TEXT:
        return None
    try:
        packed = _inet_pton(_AF_INET6, text)
    except (OSError, ValueError, UnicodeError):  # illegal text, NUL byte, lone surrogate
        return None
    if packed[:12] == _V4_MAPPED_PREFIX:
        a, b, c, d = packed[12], packed[13], packed[14], packed[15]
        return ParsedIP(f"{a}.{b}.{c}.{d}", 4, packed[12:], _scope_v4(a, b, c, d))
    return ParsedIP(_ntop6(packed), 6, packed, _scope_v6(packed))


def parse_ip(text: str, field: str = "source_ip") -> ParsedIP:
    """Validate ``text`` as one IPv4 or IPv6 address and classify its scope.

    Raises :class:`RecordError` with ``Reason.INVALID_IP`` (``MISSING_IP`` for an empty string or
    None, ``WRONG_TYPE`` for a non-string); ``field`` names the record field in the error, never
    the value.
    """
    if type(text) is not str:
        if text is None:
            raise RecordError(Reason.MISSING_IP, field=field)
        raise RecordError(Reason.WRONG_TYPE, field=field)
    parsed = _parse(text)
    if parsed is None:
        raise RecordError(Reason.MISSING_IP if not text else Reason.INVALID_IP, field=field)
    return parsed


# --- truncation -----------------------------------------------------------------------------------


def _check_prefix(name: str, value: object, maximum: int) -> int:
    if type(value) is not int or not 0 <= value <= maximum:
        raise ConfigError(f"{name} must be an integer from 0 to {maximum}, got {value!r}")
    return value


class IPTruncator:
    """Keep only the network prefix of an address: ``203.0.113.77 -> "203.0.113.0/24"``.

    Addresses that embed an IPv4 address inside IPv6 get the IPv4 prefix applied to the embedded
    part too, so a /48 on a 6to4 address (``2002:AABB:CCDD::/48`` carries the full IPv4
    ``a.b.c.d``) cannot reveal more than ``ipv4_prefix`` bits of it: 2002::/16 is cut to at most
    ``16 + ipv4_prefix`` bits; NAT64 64:ff9b::/96, Teredo 2001::/32 and IPv4-compatible ::/96 to at
    most ``96 + ipv4_prefix``.
    """

    __slots__ = ("_ipv4_mask", "_ipv4_prefix", "_ipv4_suffix", "_ipv6_prefix")

    def __init__(self, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> None:
        self._ipv4_prefix = _check_prefix("ipv4_prefix", ipv4_prefix, 32)
        self._ipv6_prefix = _check_prefix("ipv6_prefix", ipv6_prefix, 128)
        self._ipv4_mask = (0xFFFFFFFF << (32 - ipv4_prefix)) & 0xFFFFFFFF
        self._ipv4_suffix = f"/{ipv4_prefix}"

    @property
    def ipv4_prefix(self) -> int:
        """Bits kept of an IPv4 address."""
        return self._ipv4_prefix

    @property
    def ipv6_prefix(self) -> int:
        """Bits kept of an IPv6 address (less for IPv6 forms that embed an IPv4 address)."""
        return self._ipv6_prefix

    def __call__(self, ip: ParsedIP) -> str:
        """Return the network ``address/prefix`` that contains ``ip``."""
        packed = ip.packed
        if ip.version == 4:
            if self._ipv4_prefix == 24:  # the default: skip the integer round trip
                return f"{packed[0]}.{packed[1]}.{packed[2]}.0/24"
            n = int.from_bytes(packed, "big") & self._ipv4_mask
            return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}{self._ipv4_suffix}"
        prefix = self._v6_prefix_for(packed)
        n = int.from_bytes(packed, "big") >> (128 - prefix) << (128 - prefix)
        return f"{_ntop6(n.to_bytes(16, 'big'))}/{prefix}"

    def _v6_prefix_for(self, p: bytes) -> int:
        prefix = self._ipv6_prefix
        if p[0] == 0x20:
            if p[1] == 0x02:  # 6to4: IPv4 in bits 16..47
                return min(prefix, 16 + self._ipv4_prefix)
            if p[1] == 0x01 and p[2] == 0 and p[3] == 0:  # Teredo: obfuscated client IPv4 in bits 96..127
                return min(prefix, 96 + self._ipv4_prefix)
        elif p[0] == 0 and (p[:12] == b"\x00" * 12 or p[:12] == b"\x00\x64\xff\x9b" + b"\x00" * 8):
            return min(prefix, 96 + self._ipv4_prefix)  # IPv4-compatible or NAT64 well-known prefix
        return prefix
