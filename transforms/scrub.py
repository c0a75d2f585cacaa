"""Replace personal data and secrets found in free text with placeholders.

:class:`TextScrubber` is meant for short free-text values that are kept in an output record (an
allow-listed query parameter, a log message): it replaces, in this order,

- JWTs (``eyJ...x.y.z``) with ``{jwt}``;
- ``Bearer``/``Basic`` credentials with ``Bearer {token}``;
- values of ``password=``, ``token:``, ``api_key=``, ``secret=``... assignments with ``{secret}``;
- e-mail addresses with ``{email}``;
- IPv6 literals (validated with ``inet_pton``) and IPv4 dotted quads with ``{ip}``;
- card numbers (13-19 digits, optionally grouped by spaces or dashes, passing Luhn) with ``{card}``;
- UUIDs with ``{uuid}``; hex runs of 16+ and random-looking base64 runs of 24+ with ``{token}``.

Every pattern has bounded repetition, so a long hostile input costs linear time.

It errs towards over-scrubbing (a version string like ``1.2.3.4`` becomes ``{ip}``). Placeholders
contain no character any rule matches, and passes repeat until nothing changes, so scrubbing is
idempotent. Every rule is guarded by a cheap ``in`` test or one precompiled search, so text with
nothing to replace returns quickly (the same object).

>>> TextScrubber()("mail bob@example.com from 10.1.2.3 with token=abc123")
'mail {email} from {ip} with token={secret}'
"""

from __future__ import annotations

import re
import socket
from typing import Final

__all__ = ["TextScrubber", "looks_random"]

_JWT_RE: Final = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# The credential must look like one (a digit, a symbol or mixed case): "basic information" stays.
_AUTH_RE: Final = re.compile(
    r"\b(Bearer|Basic|BEARER|BASIC|bearer|basic)(\s+)"
    r"(?=[A-Za-z0-9._~+/=-]*(?:[0-9._~+/=-]|[a-z][A-Z]|[A-Z][a-z]))[A-Za-z0-9._~+/=-]{8,}"
)
# key=value / key: value where the key names a secret; the value (quoted or up to a delimiter) goes.
_ASSIGN_NAMES: Final = (
    r"pass(?:word|wd|phrase)?|pwd|secret|token|key|auth|credentials?|session(?:id)?|sid|"
    r"jsessionid|phpsessid|signature|sig|otp|pin"
)
_ASSIGN_RE: Final = re.compile(
    rf"(?i)(\b(?:[A-Za-z0-9]{{1,32}}[_.-]){{0,4}}(?:{_ASSIGN_NAMES})\b[\"']?\s*[=:]\s*)"
    r"(\{secret\}|\"[^\"]*\"|'[^']*'|[^\s&;,\"'}]+)"
)
# Local part: RFC 5322 atext and dots, at most 64 (the RFC limit, and what keeps the scan linear);
# quoted local parts and IP-literal domains are not covered.
_EMAIL_RE: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,16}[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
# Candidates only: inet_pton decides, so "12:30:45" and MAC addresses stay. The dotted tail is tried
# first so that "::ffff:1.2.3.4" is taken whole, not as "::ffff:1" leaving ".2.3.4" behind.
_IPV6_RE: Final = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:%[\w.]+)?(?![\w:])"
)
_IPV4_RE: Final = re.compile(r"(?<!\d)\d{1,3}(?:\.\d{1,3}){3}(?!\d)")
_CARD_RE: Final = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?!\d)")
_UUID_RE: Final = re.compile(
    r"(?i)(?<![0-9a-f-])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-f-])"
)
# Long hex ids (session ids, digests) and base64 runs that mix letters and digits.
_HEX_RE: Final = re.compile(r"(?<![A-Za-z0-9])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,}(?![A-Za-z0-9])")
_B64_RE: Final = re.compile(
    r"(?<![A-Za-z0-9+/_-])(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[A-Za-z])[A-Za-z0-9+/_-]{24,}={0,2}"
)
_B64_PARTS_RE: Final = re.compile(r"[-_.~]+")
_B64_MIN_SWITCH_RATIO: Final = 0.35
_DIGIT_RE: Final = re.compile(r"\d")
# One scan for the fast path: the characters or words some rule needs.
_CANDIDATE_RE: Final = re.compile(r"[\d@:=]|eyJ|earer|EARER|asic|ASIC")
_MAX_PASSES: Final = 4

_AF_INET6 = socket.AF_INET6
_inet_pton = socket.inet_pton


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i & 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def _card(m: re.Match[str]) -> str:
    text = m.group()
    digits = text.replace(" ", "").replace("-", "")
    if _luhn_ok(digits):
        return "{card}"
    # A card followed by more digit groups ("4111 1111 1111 1111 12/25" reads 18 digits):
    # try the group boundaries, longest first, so the card does not leak because of its neighbour.
    groups = re.split(r"[ -]", text)
    if len(groups) > 1:
        for end in range(len(groups) - 1, 0, -1):
            head = "".join(groups[:end])
            if 13 <= len(head) <= 19 and _luhn_ok(head):
                return "{card}" + text[len(" ".join(groups[:end])) :]
    return text


def _ipv6(m: re.Match[str]) -> str:
    text = m.group()
    try:
        _inet_pton(_AF_INET6, text.split("%", 1)[0])
    except (OSError, ValueError):
        return text
    return "{ip}"


def _char_class(ch: str) -> int:
    if ch.isdigit():
        return 0
    if ch.islower():
        return 1
    if ch.isupper():
        return 2
    return 3


def looks_random(token: str) -> bool:
    """True when a letters-and-digits run looks machine-generated rather than like words.

    Random base64 switches character class (upper/lower/digit/symbol) on ~60% of adjacent pairs;
    slugs and CamelCase names ("spring-sale-2024-newsletter", "SpringSale2024NewsletterV2") on
    under 35% once "-", "_", "." and "~" are taken as word separators.
    """
    switches = letters = 0
    for part in _B64_PARTS_RE.split(token.rstrip("=")):
        letters += len(part)
        prev = -1
        for ch in part:
            cls = _char_class(ch)
            if prev >= 0 and cls != prev:
                switches += 1
            prev = cls
    return letters > 0 and switches >= letters * _B64_MIN_SWITCH_RATIO


def _b64(m: re.Match[str]) -> str:
    text = m.group()
    return "{token}" if looks_random(text) else text


def _assign(m: re.Match[str]) -> str:
    return m.group(1) + "{secret}"


def _auth(m: re.Match[str]) -> str:
    return m.group(1) + m.group(2) + "{token}"


class TextScrubber:
    """``TextScrubber()(text) -> text`` with personal data and secrets replaced by placeholders."""

    __slots__ = ()

    def __init__(self) -> None:
        """Nothing to configure: the rules are precompiled at import."""

    def __call__(self, text: str) -> str:
        """Scrub one string."""
        if _CANDIDATE_RE.search(text) is None:
            return text  # no rule can match without one of these (every token rule needs a digit)
        # A replacement can expose another candidate ("0000000000000PASSWORD=x": once the digits
        # are "{card}", "PASSWORD" starts a word), so passes repeat until nothing changes. Each
        # change strictly shrinks the unscrubbed text; the cap only bounds pathological inputs.
        for _ in range(_MAX_PASSES):
            scrubbed = _scrub_once(text)
            if scrubbed == text:
                break
            text = scrubbed
        return text


def _scrub_once(text: str) -> str:
    has_digit = _DIGIT_RE.search(text) is not None
    has_at = "@" in text
    has_colon = ":" in text
    has_eq = "=" in text
    has_jwt = "eyJ" in text
    has_auth = "earer" in text or "asic" in text or "EARER" in text or "ASIC" in text
    if has_jwt:
        text = _JWT_RE.sub("{jwt}", text)
    if has_auth:
        text = _AUTH_RE.sub(_auth, text)
    if has_eq or has_colon:
        text = _ASSIGN_RE.sub(_assign, text)
    if has_at:
        text = _EMAIL_RE.sub("{email}", text)
    if has_colon:
        text = _IPV6_RE.sub(_ipv6, text)
    if has_digit:
        text = _IPV4_RE.sub("{ip}", text)
        text = _CARD_RE.sub(_card, text)
        text = _UUID_RE.sub("{uuid}", text)
        text = _HEX_RE.sub("{token}", text)
        text = _B64_RE.sub(_b64, text)
    return text
