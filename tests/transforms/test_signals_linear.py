"""Matching cost grows linearly with the text: every pattern the detector holds, and the whole record path.

Each check times one operation on a hostile text of n and of 4n characters (the minimum of several runs)
and fails when the cost per character at 4n is more than ``GROWTH_BOUND`` times the cost at n: a linear
matcher stays near 1 whatever the noise, a quadratic one reaches 4 (the newline runs that the old
command-injection pattern rescanned cost 0.6-0.9 s per Apache line). The patterns are found by walking
the detector (its rules' closures, the module-level patterns their code names, the decoders they call),
so a pattern added later is covered without touching this file.
"""

from __future__ import annotations

import re
import time
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from benchmarks.adversarial import ATOMS, POSITIONS, fill, record
from config import load_policy
from tests.transforms.keyfixtures import fixed_keyring
from transforms.process import RecordProcessor
from transforms.signals import SignalDetector, SignalParams

try:  # the linear engine; absent on code that predates it, where every pattern is an re.Pattern
    from transforms.linear_regex import LinearPattern
except ImportError:  # pragma: no cover
    LinearPattern = None  # type: ignore[assignment,misc]

GROWTH_BOUND = 2.5
SMALL = 2048  # 4 * SMALL = the detector's 8,192-character matching window
REPEAT = 5

# Decoded texts as the patterns see them (lower-case, '&' already the parameter separator \x01).
PATTERN_ATOMS = sorted({atom.lower() for atom in ATOMS.values()} | {"\x01", "\x00", "\r", "a=", "=\x01", "%0"})


def _patterns_in(root: object) -> dict[int, Any]:
    """Every compiled pattern reachable from ``root`` through the project's own objects and functions."""
    found: dict[int, Any] = {}
    seen: set[int] = set()
    stack: list[object] = [root]

    def own(value: object) -> bool:
        module = getattr(value, "__module__", None) or ""
        return module.startswith(("transforms", "config"))

    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, re.Pattern) or (LinearPattern is not None and isinstance(value, LinearPattern)):
            found[id(value)] = value
        elif isinstance(value, dict | types.MappingProxyType):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple | set | frozenset):
            stack.extend(value)
        elif isinstance(value, types.FunctionType) and own(value):
            stack.extend(cell.cell_contents for cell in value.__closure__ or () if _filled(cell))
            stack.extend(value.__defaults__ or ())
            stack.extend(value.__globals__[name] for name in _names(value.__code__) if name in value.__globals__)
        elif isinstance(value, types.MethodType):
            stack.append(value.__func__)
        elif isinstance(value, type) and own(value):
            stack.extend(vars(value).values())
        elif isinstance(value, staticmethod | classmethod):
            stack.append(value.__func__)
        elif own(type(value)) and not isinstance(value, type):
            stack.append(type(value))
            for slot in _slots(type(value)):
                stack.append(getattr(value, slot, None))
            stack.extend(getattr(value, "__dict__", {}).values())
    return found


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _slots(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        slots = vars(klass).get("__slots__", ())
        yield from (slots,) if isinstance(slots, str) else slots


DETECTOR = SignalDetector.build(SignalParams())
PATTERNS = sorted(_patterns_in(DETECTOR).values(), key=lambda p: str(p.pattern))


def _best(operation: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        operation()
        best = min(best, time.perf_counter() - start)
    return best


def _growth(cost: Callable[[int], Callable[[], object]]) -> float:
    """Cost per character at 4n over cost per character at n; a second measurement settles a high first one."""
    growth = float("inf")
    for _ in range(2):
        small, large = _best(cost(SMALL)), _best(cost(4 * SMALL))
        growth = min(growth, (large / (4 * SMALL)) / (small / SMALL))
        if growth < GROWTH_BOUND:
            break
    return growth


def _scan(pattern: Any) -> Callable[[str], object]:
    # re patterns serve as tokenizers too (finditer, sub): findall walks the whole text as they do.
    return pattern.findall if isinstance(pattern, re.Pattern) else pattern.search


def test_the_walk_finds_the_detector_patterns() -> None:
    """The walk reaches module-level patterns, rule closures and the decoders (else the timing proves little)."""
    sources = [str(pattern.pattern) for pattern in PATTERNS]
    assert len(PATTERNS) >= 25
    assert any("union" in source and "select" in source for source in sources)  # sqli.regex.txt
    assert any("jndi" in source for source in sources)  # a module-level pattern
    assert any("%[uU]" in source for source in sources)  # transforms.decode, called by the rules
    assert any("(?:/usr(?:/local)?)?/s?bin/" in source for source in sources)  # cmdi separator, built in code


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: str(p.pattern)[:40])
def test_pattern_cost_per_character_does_not_grow(pattern: Any) -> None:
    """Each pattern on runs of every hostile atom, and of each character it spells, at n and 4n characters."""
    scan = _scan(pattern)
    source = str(pattern.pattern)
    atoms = PATTERN_ATOMS + sorted({char for char in source if char.isprintable() and char not in "\\"})
    text_cache: dict[tuple[str, int], str] = {}

    def cost(atom: str) -> Callable[[int], Callable[[], object]]:
        def at(size: int) -> Callable[[], object]:
            text = text_cache.setdefault((atom, size), fill(atom, size))
            return lambda: scan(text)

        return at

    # One pass over every atom at both sizes; only the slowest-growing ones are measured again.
    growths = sorted(((_growth(cost(atom)), atom) for atom in atoms), reverse=True)
    worst, atom = growths[0]
    assert worst < GROWTH_BOUND, f"cost per character grows {worst:.1f}x from {SMALL} to {4 * SMALL} on {atom!r} runs"


PROCESSOR = RecordProcessor.build(load_policy(), fixed_keyring())
INGEST = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
RECORD_ATOMS = {
    name: ATOMS[name]
    for name in (
        "newline",
        "%0a",
        "%25 chain",
        "space",
        "single quote",
        "../",
        "${",
        "<",
        "(",
        ";",
        "segments",
        "parameters",
        "%",
        "=http://",
        "; id",
    )
}


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("name", RECORD_ATOMS)
def test_record_cost_per_character_does_not_grow(name: str, position: str) -> None:
    """A full Apache line through the processor, the hostile run in one field, at n and 4n characters."""
    serial = iter(range(10**9))

    def at(size: int) -> Callable[[], object]:
        content = fill(RECORD_ATOMS[name], size)
        # a new serial each run: no memo or cache answers for a record seen before
        return lambda: PROCESSOR(record(position, content, next(serial)), INGEST)

    growth = _growth(at)
    assert growth < GROWTH_BOUND, f"cost per character grows {growth:.1f}x from {SMALL} to {4 * SMALL} characters"
