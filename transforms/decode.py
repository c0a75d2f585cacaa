"""URL decoding and normalisation for attack-signature matching.

Attack payloads hide behind encodings (``%2e%2e%2f``, ``%252e`` double encoding, IIS ``%u002e``,
overlong UTF-8 ``%c0%ae``) and spellings (``..\\``, ``//``, ``/./``, upper case). Matching is done on a
canonical form so that a pattern list needs one spelling per attack. The functions here only build that
canonical form: they never validate, never raise on odd input and keep no state.

The output is for matching only: it is lossy (lower-cased, ``+`` read as a space in queries, invalid
UTF-8 replaced by U+FFFD) and must never be logged or stored.

>>> full_decode("%252e%252e%252f")
'../'
>>> normalize_path("/A//B/./%2E%2e%5cwin.ini")
'/a/b/../win.ini'
>>> normalize_query("q=%27+OR+1%3D1")
"q=' or 1=1"
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_DECODE_ROUNDS",
    "encoding_evasion",
    "full_decode",
    "normalize_header",
    "normalize_path",
    "normalize_query",
]

# Each round that changes the text makes it shorter (a %xx becomes one character) or turns a '+' that the
# previous round produced into a space, so the loop ends on its own; the cap bounds the cost of a hostile
# request line (a few kB at most) and is far above the two or three layers real payloads use. Inputs of up
# to 2 * MAX_DECODE_ROUNDS characters always reach the fixed point.
MAX_DECODE_ROUNDS = 40

# IIS-style %uXXXX escapes (CVE-2000-0884 era, still in scanner payloads).
_PERCENT_U = re.compile(r"%[uU]([0-9a-fA-F]{4})")

# Overlong / invalid UTF-8 spellings of '.', '/' and '\' that old servers decoded (CVE-2000-0884, Tomcat
# CVE-2008-2938). Python's strict decoder would turn them into U+FFFD, hiding the traversal.
_OVERLONG = {
    "%c0%ae": ".",
    "%c0%2e": ".",
    "%e0%80%ae": ".",
    "%c0%af": "/",
    "%c0%2f": "/",
    "%e0%80%af": "/",
    "%c1%9c": "\\",
    "%c1%1c": "\\",
    "%c0%5c": "\\",
}
_OVERLONG_RE = re.compile("|".join(re.escape(k) for k in _OVERLONG), re.IGNORECASE)

_SLASH_RUN = re.compile(r"/{2,}")


def _decode_once(text: str, plus_as_space: bool) -> str:
    if plus_as_space and "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    if "%u" in text or "%U" in text:
        text = _PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = _OVERLONG_RE.sub(lambda m: _OVERLONG[m.group(0).lower()], text)
    return _unquote(text)


# A run of %xx escapes: the bytes that one UTF-8 decode turns into text.
_ESCAPE_RUN = re.compile(r"(?:%[0-9a-fA-F]{2})+")


def _run_to_text(match: re.Match[str]) -> str:
    # errors="replace": a stray byte becomes U+FFFD, which no pattern contains, instead of raising.
    return bytes.fromhex(match.group(0).replace("%", "")).decode("utf-8", "replace")


def _unquote(text: str) -> str:
    """``urllib.parse.unquote(text, errors="replace")``, at C speed on text full of '%'.

    unquote walks every '%' in a Python loop: a field of 8,000 lone '%' cost 50x an ordinary one. Here the
    scan is one regex pass and Python runs once per run of escapes. Same result: ASCII bytes never
    continue a UTF-8 sequence, so decoding each run of escapes on its own replaces the same bytes.
    """
    return _ESCAPE_RUN.sub(_run_to_text, text)


def full_decode(text: str, *, plus_as_space: bool = False) -> str:
    """Percent-decode ``text`` repeatedly until it stops changing (at most ``MAX_DECODE_ROUNDS`` rounds).

    Handles ``%xx`` (invalid UTF-8 becomes U+FFFD), ``%uXXXX``, overlong UTF-8 dots and slashes, and, with
    ``plus_as_space``, ``+`` as a space (form encoding: right for a query, wrong for a path, where ``+``
    is a literal character, as in Cisco's ``/+CSCOE+/``). Idempotent on the result.

    >>> full_decode("%2541%2B", plus_as_space=True)
    'A '
    >>> full_decode("%c0%ae%c0%ae/")
    '../'
    """
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = _decode_once(text, plus_as_space)
        if decoded == text:
            break
        text = decoded
    return text


# A UTF-8 sequence that no conforming encoder writes: overlong forms (C0/C1 leads, E0 80-9F, F0 80-8F),
# UTF-16 surrogates (ED A0-BF), code points above U+10FFFF (F4 90+, F5-F7) and the old 5- and 6-byte forms
# (F8-FD), each with its full set of continuation bytes, and the invalid overlong spellings of '.', '/' and
# '\' that old servers decoded anyway. A Latin-1 form ("%E9" for 'é') has no continuation bytes after it, so
# it does not match: only complete sequences count, never a lone high byte.
_CONT = r"%[89ab][0-9a-f]"
_INVALID_UTF8 = re.compile(
    rf"%c[01]{_CONT}|%c0%(?:2e|2f|5c)|%c1%1c|%e0%[89][0-9a-f]{_CONT}|%ed%[ab][0-9a-f]{_CONT}"
    rf"|%f0%8[0-9a-f](?:{_CONT}){{2}}|%f4%[9ab][0-9a-f](?:{_CONT}){{2}}|%f[5-7](?:{_CONT}){{3}}"
    rf"|%f[89ab](?:{_CONT}){{4}}|%f[cd](?:{_CONT}){{5}}",
    re.IGNORECASE,
)
_ESCAPE = re.compile(r"%([0-9a-fA-F]{2})")
# Characters that a URL nested in a parameter value legitimately carries escaped, so that encoding the
# outer URL escapes them a second time ("?next=%2Fsearch%3Fq%3Da%2520b"): space and the URL delimiters
# % / : ? # [ ] @ ! $ & ' ( ) * + , ; =. A second layer over anything else (a letter, a digit, - . _ ~,
# a control character, < > " \ ` { } | ^) is evasion: no encoder escapes those twice by accident.
_NESTED_URL_BYTES = frozenset(b" %/:?#[]@!$&'()*+,;=")


def encoding_evasion(raw: str) -> bool:
    """Whether a raw path or query hides characters behind encodings that no client produces.

    True for invalid or overlong UTF-8 (``%c0%af``, ``%F5%80%BF%BF``), for a second layer of
    percent-encoding over a character that nested URLs never escape twice (``%252e``, ``%2500``,
    ``%257C``, ``%%32%65``), and for any third layer (``%25252f``). Legacy Latin-1 query strings
    (``%F1``) and URLs nested in a parameter (``%253A``, ``%2520``) are not evasion.

    >>> encoding_evasion("/a%252e%252e/")
    True
    >>> encoding_evasion("/go?next=%2Fsearch%3Fq%3Da%2520b")
    False
    """
    if "%" not in raw:
        return False
    if _INVALID_UTF8.search(raw) is not None:
        return True
    once = _decode_once(raw, False)
    if "%" not in once:
        return False
    if _INVALID_UTF8.search(once) is not None:  # a double-encoded overlong sequence ("%25c0%25ae")
        return True
    layer2 = [int(hex_digits, 16) for hex_digits in _ESCAPE.findall(once)]
    if any(byte < 0x80 and byte not in _NESTED_URL_BYTES for byte in layer2):
        return True
    return bool(layer2) and _ESCAPE.search(_decode_once(once, False)) is not None


def normalize_path(raw_path: str) -> str:
    """Canonical form of a URL path for matching: fully decoded, lower-case, ``\\`` read as ``/``,
    runs of ``/`` collapsed and ``/./`` removed. ``..`` is kept: it is what traversal rules look for.

    >>> normalize_path("//phpMyAdmin/./scripts/setup.php")
    '/phpmyadmin/scripts/setup.php'
    """
    text = full_decode(raw_path).lower()
    if "\\" in text:
        text = text.replace("\\", "/")
    if "//" in text:
        text = _SLASH_RUN.sub("/", text)
    while "/./" in text:
        text = text.replace("/./", "/")
    if text.endswith("/."):
        text = text[:-1]
    return text


def normalize_query(raw_query: str) -> str:
    """Canonical form of a query string for matching: fully decoded with ``+`` as a space, lower-case,
    ``\\`` read as ``/``. Slashes are not collapsed (``=http://`` must survive).

    >>> normalize_query("file=..%5C..%5Cboot.ini&x=%3CScript%3E")
    'file=../../boot.ini&x=<script>'
    """
    text = full_decode(raw_query, plus_as_space=True).lower()
    if "\\" in text:
        text = text.replace("\\", "/")
    return text


def normalize_header(value: str) -> str:
    """Canonical form of a header value such as a user agent: fully decoded (``+`` stays a ``+``: headers
    are not form-encoded), lower-case, ``\\`` read as ``/``.

    >>> normalize_header("curl%2F8 (+https://x/) C:%5CWindows")
    'curl/8 (+https://x/) c:/windows'
    """
    text = full_decode(value).lower()
    if "\\" in text:
        text = text.replace("\\", "/")
    return text
