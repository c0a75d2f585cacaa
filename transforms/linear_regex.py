"""Regular expressions that run in time linear in the text, whatever the text: RE2 behind ``re``'s spelling.

Python's ``re`` backtracks: a pattern such as ``[;\\n]\\s*cmd`` costs O(n^2) on a run of newlines, and an
attacker chooses the text. Every pattern the signal detector runs on request data is compiled here, with
RE2 (``google-re2``), whose automata never backtrack: the cost of a search is bounded by the length of the
text times a constant that depends on the pattern only.

Patterns keep ``re``'s spelling and meaning, with two differences that :func:`compile_linear` hides:

- RE2's ``\\s``, ``\\w`` and ``\\d`` are ASCII; ``re``'s match Unicode (``\\s`` also matches ``\\v``,
  ``\\x1c``-``\\x1f``, NBSP..., all of which SQL and shell parsers accept as blanks). They are rewritten
  into the equivalent Unicode classes.
- ``re``'s ``$`` (without ``(?m)``) also matches before a final newline; it becomes ``(?:\\n?\\z)``.

What RE2 lacks (lookarounds, backreferences) is refused with :class:`re2.error`: write the pattern
without them (a search only answers yes or no, so a trailing lookahead can consume the character it
looks at, and a lookbehind can become ``(?:^|[^...])``). ``\\b`` stays ASCII in RE2: around a non-ASCII
letter it sees a boundary that ``re`` does not, so a keyword next to one fires a little more often,
never less.

>>> compile_linear(r"union\\s{1,5}select").search("1 union\\x0bselect 2")
True
>>> try:
...     compile_linear(r"(?<!/)document")
... except re2.error:
...     print("refused: a lookbehind")
refused: a lookbehind
"""

from __future__ import annotations

from typing import Final

import re2

__all__ = ["INLINE_SPACE", "LinearPattern", "compile_linear", "to_re2_syntax"]

# The characters for which str.isspace() is true: what re's \s matches in a str pattern.
_SPACE: Final = r"\t-\r\x1c-\x20\x85\pZ"
# re's [^\S\n], which RE2 cannot spell (no negated class inside a class): a blank that does not end a line.
INLINE_SPACE: Final = r"[\t\x0b-\r\x1c-\x20\x85\pZ]"
# str.isalnum() or "_": what re's \w matches (letters and numbers of every script).
_WORD: Final = r"\pL\pN_"
_DIGIT: Final = r"\p{Nd}"
_IN_CLASS: Final = {"s": _SPACE, "w": _WORD, "d": _DIGIT}
_OUTSIDE: Final = {
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "d": f"[{_DIGIT}]",
    "D": f"[^{_DIGIT}]",
    "Z": r"\z",
}

# A compiled automaton that outgrows this falls back from RE2's DFA to its (still linear, slower) NFA.
_MAX_MEM: Final = 32 << 20


def to_re2_syntax(pattern: str) -> str:
    """``pattern`` (``re`` syntax) with ``\\s \\S \\w \\W \\d \\D \\Z`` and ``$`` spelled as RE2 must, to
    mean what they mean in ``re``. Raises :class:`re2.error` for ``\\S \\W \\D`` inside a bracket
    expression (RE2 cannot negate inside a class)."""
    multiline = pattern.startswith("(?m)") or pattern.startswith("(?im)") or pattern.startswith("(?mi)")
    out: list[str] = []
    in_class = False
    i = 0
    n = len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            escaped = pattern[i + 1]
            if in_class and escaped in _IN_CLASS:
                out.append(_IN_CLASS[escaped])
            elif in_class and escaped in "SWD":
                raise re2.error(f"\\{escaped} inside a bracket expression")
            elif not in_class and escaped in _OUTSIDE:
                out.append(_OUTSIDE[escaped])
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class = True
            out.append(char)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a ']' first in a class is a literal
                out.append("\\]")
                i += 1
            continue
        if char == "$" and not multiline:
            out.append(r"(?:\n?\z)")
        else:
            out.append(char)
        i += 1
    return "".join(out)


class LinearPattern:
    """A compiled pattern that answers whether it occurs in a text, in time linear in the text."""

    __slots__ = ("_regexp", "pattern")

    def __init__(self, pattern: str) -> None:
        options = re2.Options()
        options.max_mem = _MAX_MEM
        options.log_errors = False  # a refused pattern raises re2.error; RE2 would also print it to stderr
        options.never_capture = True  # only yes or no is asked: no group positions to track
        self.pattern = pattern  # the re spelling, for messages and tests
        self._regexp = re2.compile(to_re2_syntax(pattern), options)

    def search(self, text: str) -> bool:
        """Whether the pattern occurs anywhere in ``text``."""
        return self._regexp.search(text) is not None

    def match(self, text: str) -> bool:
        """Whether the pattern occurs at the start of ``text``."""
        return self._regexp.match(text) is not None

    def fullmatch(self, text: str) -> bool:
        """Whether the pattern matches the whole of ``text``."""
        return self._regexp.fullmatch(text) is not None

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r})"


def compile_linear(pattern: str) -> LinearPattern:
    """Compile ``pattern`` (``re`` syntax, no lookarounds or backreferences) for linear-time search."""
    return LinearPattern(pattern)
