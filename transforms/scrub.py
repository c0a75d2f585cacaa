"""Replace personal data and secrets found in free text with placeholders.

:class:`TextScrubber` is meant for short free-text values that are kept in an output record (an
allow-listed query parameter, a log message): it replaces, in this order,

- JWTs (``eyJ...x.y.z``) with ``{jwt}``;
- ``Bearer``/``Basic`` credentials with ``Bearer {token}``;
- values of ``password=``, ``token:``, ``api_key=``, ``secret=``... assignments with ``{secret}``;
- e-mail addresses with ``{email}``;
- IPv6 literals (validated with ``inet_pton``, or 8 hex groups glued to more text) and IPv4 dotted quads
  with ``{ip}``; MAC addresses with ``{mac}``;
- card numbers (13-19 digits, optionally grouped by spaces or dashes, passing Luhn) with ``{card}``;
- UUIDs with ``{uuid}``; AWS access key ids, hex runs of 16+ and random-looking base64/base64url runs
  of 16+ (:func:`looks_random`) with ``{token}``.

Every pattern has bounded repetition, so a long hostile input costs linear time.

It errs towards over-scrubbing (a version string like ``1.2.3.4`` becomes ``{ip}``). Placeholders
contain no character any rule matches, and passes repeat until nothing changes, so scrubbing is
idempotent. Every rule is guarded by a cheap ``in`` test or one precompiled search, so text with
nothing to replace returns quickly (the same object).

>>> TextScrubber()("mail bob@example.com from 10.1.2.3 with token=abc123")
'mail {email} from {ip} with token={secret}'
"""

from __future__ import annotations

import math
import re
import socket
from collections import Counter
from typing import Final

__all__ = ["AWS_KEY_ID_RE", "MIN_TOKEN_LENGTH", "TextScrubber", "excess_bits", "looks_random"]

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
# Candidates only: inet_pton decides, so "12:30:45" stays (MAC addresses are _MAC_RE's). The dotted tail is tried
# first so that "::ffff:1.2.3.4" is taken whole, not as "::ffff:1" leaving ".2.3.4" behind.
_IPV6_RE: Final = re.compile(
    r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:%[\w.]+)?(?![0-9A-Za-z:])"
)
# What the strict rules miss because a client glued it to more text: an address with 7+ colon-separated hex groups
# ("2001:db8:...:7ec7ab") and an e-mail whose domain is mangled or cut ("bob@corp{{.example.net", "bob@exa").
# The host part must start with a letter, so that "react@18.2.0" (a package version) stays.
_IPV6_GLUED_RE: Final = re.compile(r"(?:[0-9A-Fa-f]{0,4}:){6,7}[0-9A-Fa-f]{1,4}")
# A MAC address names a device as surely as an address names a host.
_MAC_RE: Final = re.compile(
    r"(?<![0-9A-Za-z:-])[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![0-9A-Za-z:-])"
)
_LOOSE_EMAIL_RE: Final = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z][^\s@/?#&;,]{0,252}")
_IPV4_RE: Final = re.compile(r"(?<!\d)\d{1,3}(?:\.\d{1,3}){3}(?!\d)")
_CARD_RE: Final = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?!\d)")
# A word and a dash may come before ("report-<uuid>"), so the boundaries are hex digits only.
_UUID_RE: Final = re.compile(
    r"(?i)(?<![0-9a-f])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-f])"
)
# AWS access key ids: the documented prefixes and 16 base32 characters (looks_random catches them too; this
# is the certain case).
AWS_KEY_ID_RE: Final = re.compile(r"(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA|APKA|ABIA|ACCA)[A-Z2-7]{16}")
# No boundary after the key: a client can glue one to a word ("AKIA...bot/1.0"), and the prefix is distinctive.
_AWS_RE: Final = re.compile(rf"(?<![A-Za-z0-9]){AWS_KEY_ID_RE.pattern}")
# Long hex ids (session ids, digests) and base64 runs, which looks_random judges (a random 16-character
# base64url token has no digit 7% of the time, so no digit is required).
_HEX_RE: Final = re.compile(r"(?<![A-Za-z0-9])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,}(?![A-Za-z0-9])")
_B64_RE: Final = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2}")
_B64_PARTS_RE: Final = re.compile(r"[-_.~]+")
_RUN_SEPARATOR_RE: Final = re.compile(r"[-_/+]")
_PIECE_SEPARATOR_RE: Final = re.compile(r"([/+])")  # kept in the split: pieces are joined back as they were
_MAX_CUTS: Final = 3
_DIGIT_RE: Final = re.compile(r"\d")
# One scan for the fast path: the characters or words some rule needs (or a 16-character run, for tokens).
_CANDIDATE_RE: Final = re.compile(r"[\d@:=]|eyJ|earer|EARER|asic|ASIC|[A-Za-z0-9+/_-]{16}")
_REPEATED_CHAR_RE: Final = re.compile(r"(.)\1{3,}")  # 4+ of one character: one match per run, linear
_LONG_RUN_RE: Final = re.compile(r"[A-Za-z0-9+/_-]{16}")
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


# Letter-bigram costs of a word model, in half-bits: row = previous letter ("^" = word start, then a-z),
# column = next letter (a-z, then "$" = word end); -log2 P(next | previous), add-one smoothed and capped
# at 35 half-bits. Counted on the words of the Python standard library's modules (identifiers, comments,
# docstrings: technical English, as paths are); `python -m benchmarks.token_detection --bigram-table`
# prints it again.
_BIGRAM_HALF_BITS: Final = (
    "8a8898cc7heaa999i867ccbjhhz",
    "ob89lgbm9nd676qaq675ccfedmb",
    "7hbd5lhi96l6gg8doaag6oqo7g8",
    "7mdh6im7au87eh5hkad6bhkrhn8",
    "8gia4hmp7kmdjg9incadakmkfq3",
    "ah99dafmhqi7b7gbf788kefaeo3",
    "9ogebajm6usbih6fm9ddapothv2",
    "cigj4keb8vqaf9civa6d9fmsng3",
    "6nki3koj7wlggg7oucfcdpqsip5",
    "cd9bb7bsjqh8947cmb67ocqdxcf",
    "aphl2lpnepfknm6epgfk7pmphp4",
    "amid3iek8qm9jbeejf8gcm9skm3",
    "7ghb55lm6tk8lf8esi8a9jjrbk7",
    "5ajd3kpm9rjebh76wiadbonrhu7",
    "7j976c7kbqeekd7fpk96cdnqfo4",
    "eaa8g9foepeb95c9z5989dbiok7",
    "5kfe5hlgaxi7ii79m6d7bfgtax6",
    "iilekjnlhjnfldeghbbj1ljlnn6",
    "7hdd4gan8qfgb87hv999cfhobu4",
    "cmdi4jfc8pgeghbblh86blhncq3",
    "8jef6fo57qnegi8es8ac8lglbj4",
    "cbcd6bdsbuo686f8w577hoskqnd",
    "3kkt2iki7tomegcipijjokhloo8",
    "6hic7gm64pqcla7ki6ahlkfiqr6",
    "9g5h9ekh8socfof7sge4llmcfh5",
    "igegagikbusecbc6rg77iidqik2",
    "blik2fne5ppcbealpghhjpkpgj7",
)
_BIGRAM_ROWS: Final = "^abcdefghijklmnopqrstuvwxyz"
_BIGRAM_COLS: Final = "abcdefghijklmnopqrstuvwxyz$"
_BIGRAM_BITS: Final = {
    prev + nxt: int(row[j], 36) / 2
    for prev, row in zip(_BIGRAM_ROWS, _BIGRAM_HALF_BITS, strict=True)
    for j, nxt in enumerate(_BIGRAM_COLS)
}
# Class-change costs of the word model, in bits: a word starting right after a digit run ("v2beta"), a digit
# run starting after a word ("kibana3"), a camelCase boundary, a separator, a lower-case/capital word start.
_DIGIT_TO_LETTER: Final = 4.0
_LETTER_TO_DIGIT: Final = 5.0
_CAMEL_BOUNDARY: Final = 4.0
_ACRONYM_END: Final = 1.0  # "HTMLParser": a capital run hands over to a capitalised word
_SEPARATOR: Final = 1.0
_REPEATED_SEPARATOR: Final = 0.5
_LOWER_START: Final = 0.3
_UPPER_START: Final = 1.5
_UPPER_CONTINUES: Final = 0.8  # ALLCAPS words
_DIGIT_BITS: Final = math.log2(10)
_DIGIT_CONTINUES: Final = 0.2
_DIGIT_STARTS: Final = 1.0
# A token is random when the word model needs this many more bits per character than uniform draws from
# its alphabet (chosen on a small grid: 99.4%+ of generated 16-character tokens pass, no real path word or
# slug of the shared access logs scores above 0.64; see benchmarks/token_detection.py).
_MIN_EXCESS_BITS_PER_CHAR: Final = 0.75
# ... or when its character class changes this often (random base64 switches on ~60% of adjacent pairs,
# slugs and CamelCase names on under 35% once "-", "_", "." and "~" are word separators).
_MIN_SWITCH_RATIO: Final = 0.5
MIN_TOKEN_LENGTH: Final = 16
# Random 16-character tokens use 10+ distinct characters (3+ bits); repetitions and padding runs do not.
_MIN_SHANNON_BITS: Final = 2.5
# Both tests at once, each below its own bound (see looks_random).
_NEAR_EXCESS_BITS_PER_CHAR: Final = 0.4
_NEAR_SWITCH_RATIO: Final = 0.3
_HEX_LETTERS: Final = frozenset("abcdefABCDEF")


def _char_class(ch: str) -> int:
    if ch.isdigit():
        return 0
    if ch.islower():
        return 1
    if ch.isupper():
        return 2
    return 3


def _switch_ratio(token: str) -> float:
    switches = letters = 0
    for part in _B64_PARTS_RE.split(token):
        letters += len(part)
        prev = -1
        for ch in part:
            cls = _char_class(ch)
            if prev >= 0 and cls != prev:
                switches += 1
            prev = cls
    return switches / letters if letters else 0.0


def excess_bits(token: str) -> float:
    """How many more bits a word model needs for ``token`` than uniform draws from its alphabet.

    The word model reads words (letter bigrams of technical English), digit runs, camelCase and
    separators, paying for every class change; the uniform model pays ``log2(alphabet)`` per character,
    the alphabet being the classes present (26 per letter case, 10 digits, 6 letters for hex, plus each
    separator seen). Words, slugs, versions and file names cost the word model less (negative or small
    excess); machine-generated tokens cost it about 2-3 bits per character more.
    """
    bigram = _BIGRAM_BITS
    bits = 0.0
    prev = "s"  # class of the previous character: "s" start/separator, "l" lower, "u" upper, "d" digit
    prev_letter = "^"
    word_length = upper_run = 0
    lower = upper = digits = 0
    hex_only = True
    separators: set[str] = set()
    for ch in token:
        if ch.isascii() and ch.isalpha():
            letter = ch.lower()
            is_upper = ch != letter
            if is_upper:
                upper += 1
            else:
                lower += 1
            if hex_only and ch not in _HEX_LETTERS:
                hex_only = False
            if prev == "l" and is_upper:  # camelCase boundary: a new word
                bits += bigram[prev_letter + "$"] + bigram["^" + letter] + _CAMEL_BOUNDARY
                word_length, upper_run = 1, 1
            elif prev in "lu":
                bits += bigram[prev_letter + letter]
                if is_upper:
                    bits += _UPPER_CONTINUES
                    upper_run += 1
                else:
                    if upper_run > 1:
                        bits += _ACRONYM_END
                    upper_run = 0
                word_length += 1
            else:
                bits += bigram["^" + letter] + (_UPPER_START if is_upper else _LOWER_START)
                if prev == "d":
                    bits += _DIGIT_TO_LETTER
                word_length, upper_run = 1, int(is_upper)
            prev_letter = letter
            prev = "u" if is_upper else "l"
        elif "0" <= ch <= "9":
            digits += 1
            if prev in "lu":
                bits += bigram[prev_letter + "$"] + _LETTER_TO_DIGIT
            else:
                bits += _DIGIT_CONTINUES if prev == "d" else _DIGIT_STARTS
            bits += _DIGIT_BITS
            prev = "d"
        else:
            separators.add(ch)
            if prev in "lu":
                bits += bigram[prev_letter + "$"]
            bits += _REPEATED_SEPARATOR if prev == "s" else _SEPARATOR
            prev = "s"
    if prev in "lu":
        bits += bigram[prev_letter + "$"]
    letters = 6 if hex_only and digits and not (lower and upper) else 26 * (lower > 0) + 26 * (upper > 0)
    alphabet = letters + 10 * (digits > 0) + len(separators)
    return bits - len(token) * math.log2(max(alphabet, 2))


def _shannon_bits(token: str) -> float:
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in Counter(token).values())


def looks_random(token: str, min_length: int = MIN_TOKEN_LENGTH) -> bool:
    """True when a token of ``min_length``+ characters looks machine-generated rather than like words.

    The token must use many different characters (Shannon entropy of its characters of 2.5+ bits:
    "yyyyyyyyyyyyyyyy" or "ababababababab" are not random), and then one of two tests suffices: the
    word model needs 0.75+ bits per character more than uniform draws (:func:`excess_bits`: a
    cross-entropy test against technical English), or the character class changes on half the adjacent
    pairs (mixed-case base64). Trailing ``=`` padding is ignored.
    """
    token = token.rstrip("=")
    if len(token) < min_length or _shannon_bits(token) < _MIN_SHANNON_BITS:
        return False
    excess, switches = excess_bits(token) / len(token), _switch_ratio(token)
    if excess >= _MIN_EXCESS_BITS_PER_CHAR or switches >= _MIN_SWITCH_RATIO:
        return True
    # Near both thresholds at once: a random draw that happens to read a little like words on each test alone
    # ("mbzeqNVE_PLnu_EDneS1fK"); slugs and words stay far below the switch bound.
    return excess >= _NEAR_EXCESS_BITS_PER_CHAR and switches >= _NEAR_SWITCH_RATIO


def _b64(m: re.Match[str]) -> str:
    return _b64_run(m.group())


def _b64_run(text: str) -> str:
    collapsed = _REPEATED_CHAR_RE.sub(r"\1", text)
    if looks_random(text) or (collapsed != text and looks_random(collapsed)):
        # The second test sees through padding: a token followed by a run of one character ("...Tbm0100000000")
        # has too little entropy as a whole, and is as identifying as the token alone.
        return "{token}"
    if "/" in text or "+" in text:
        # Base64's "/" and "+" also join path segments and words: a token followed by a hundred "/a" ("<token>/a/a/
        # ...", found by the fuzz test in a kept query value) reads as words as a whole and at every cut near its
        # ends. Each piece between them is judged on its own.
        pieces = _PIECE_SEPARATOR_RE.split(text)
        judged = "".join(_b64_run(piece) if len(piece) >= MIN_TOKEN_LENGTH else piece for piece in pieces)
        if judged != text:
            return judged
    # A token joined to words by "-" or "_" ("report-<token>", "<token>_thumb"): the run as a whole reads
    # as words, so the run is also judged without up to three parts at its head, or at its tail.
    cuts = [m.start() for m in _RUN_SEPARATOR_RE.finditer(text)]
    if not cuts:
        return text
    for cut in cuts[:_MAX_CUTS]:
        if looks_random(text[cut + 1 :]):
            return text[: cut + 1] + "{token}"
    for cut in reversed(cuts[-_MAX_CUTS:]):
        if looks_random(text[:cut]):
            return "{token}" + text[cut:]
    return text


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
            return text  # no rule can match without one of these
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
        text = _LOOSE_EMAIL_RE.sub("{email}", _EMAIL_RE.sub("{email}", text))
    if has_colon:
        text = _IPV6_GLUED_RE.sub("{ip}", _IPV6_RE.sub(_ipv6, text))
    if has_colon or "-" in text:
        text = _MAC_RE.sub("{mac}", text)
    if has_digit:
        text = _IPV4_RE.sub("{ip}", text)
        text = _CARD_RE.sub(_card, text)
        text = _UUID_RE.sub("{uuid}", text)
        text = _HEX_RE.sub("{token}", text)
    if _LONG_RUN_RE.search(text) is not None:
        text = _AWS_RE.sub("{token}", text)
        text = _B64_RE.sub(_b64, text)
    return text
