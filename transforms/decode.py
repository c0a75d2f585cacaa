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
from urllib.parse import unquote

__all__ = ["MAX_DECODE_ROUNDS", "full_decode", "normalize_path", "normalize_query"]

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
    # errors="replace": a stray byte becomes U+FFFD, which no pattern contains, instead of raising.
    return unquote(text, errors="replace")


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
