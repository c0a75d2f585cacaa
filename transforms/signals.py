"""Per-record security signals: which known-bad pattern, if any, one event shows.

A signal names a rule, never the data that matched it: no URL, no user agent, no matched substring
leaves this module (the product's privacy rule). Counting signals per source over time (brute force,
scanning bursts) is the job of the stateful stage that consumes them.

Usage::

    detect = SignalDetector.build(SignalParams())
    for signal in detect(event):
        ...  # signal.rule == "http.sqli", signal.severity == Severity.HIGH, ...

``build`` reads and compiles the pattern lists once (``config/patterns/`` by default; see its
``README.md`` for origins and licences) and raises :class:`~transforms.errors.ConfigError` for a missing
or invalid file or an unknown rule id. The returned detector is synchronous: no I/O, no logging, and
the same signals for the same event. Its only state is a bounded in-memory memo of what the rules found
in recently seen request targets, user agents and referrers (see :class:`SignalDetector`); it never
leaves the detector.

Rules (``RULES`` is the registry; several may fire on one event, each at most once):

============================  ==============  ========  =========  =============================================
rule                          category        severity  technique  fires on
============================  ==============  ========  =========  =============================================
ssh.auth_failed               brute_force     low       T1110      sshd ``FAILED`` (not ``publickey``: clients
                                                                   offer each key they hold) / ``AUTH_FAILURE``;
                                                                   hints ``not_allowed``, ``root_refused``,
                                                                   ``too_many_auth``, ``auth_disconnect``
ssh.invalid_user              brute_force     medium    T1110      ``INVALID_USER`` or ``Event.invalid_user``
ssh.preauth_probe             recon           low       T1595      hints ``no_ident``, ``bad_protocol``,
                                                                   ``kex_failed``, ``preauth_timeout``,
                                                                   ``refused_connect`` (see ``SSH_EVENT_KEY``)
http.auth_failure             brute_force     low       T1110      401/403 on an auth path, on a POST, or with a
                                                                   user name; POST /wp-login.php answered 200
http.sqli                     injection       high      T1190      SQL injection syntax in path or query (in the
                                                                   path also with '+' read as a space)
http.xss                      injection       medium    T1190      script/HTML injection in path or query; tags
                                                                   and quoted event handlers in UA/referrer
http.cmdi                     injection       high      T1190      shell command after a separator, PHP code
                                                                   (``<?php``, ``<?=``, ``[php]``), PowerShell
                                                                   verbs, /bin paths in glob syntax in a query
                                                                   value; a command with an argument in UA/referrer
http.crlf                     injection       medium    T1190      a decoded CR/LF in the path, in a parameter
                                                                   name, or before a header line in a value
                                                                   (response splitting, header injection)
http.path_traversal           traversal       high      T1190      ``../``, OS files (/etc/passwd, win.ini, also
                                                                   in glob syntax: /etc/pa[s]swd), php:// in the
                                                                   target; ``../`` and OS files in UA/referrer
http.rfi                      injection       high      T1190      ftp:// or a suspicious http(s):// URL (IPv4 or
                                                                   IPv6 host, trailing '?'...) as a value
http.shellshock               injection       high      T1190      ``() {`` in URL, user agent or referrer
http.jndi                     injection       high      T1190      Log4Shell ``${jndi:`` lookups and nested
                                                                   ``${..${`` obfuscations in URL/UA/referrer
http.sensitive_file           discovery       medium    T1083      .env, .git/, backups (``~``, .bak), sources
                                                                   (.java), keys, config dumps (.cnf)
http.webshell                 backdoor        high      T1505.003  a known web-shell file name
http.admin_probe              recon           low       T1595.003  admin panel / CMS path answered 403 or 404
http.scanner_ua               recon           medium    T1595.002  security scanner user agent (sqlmap, nikto...)
http.bad_bot_ua               recon           low       -          scraper / bad crawler user agent
http.protocol_abuse           protocol        low       T1595      odd method, bad version, absolute-URI,
                                                                   malformed request line; in path or query a NUL
                                                                   byte, a second encoding layer over a character
                                                                   that nested URLs never escape twice (a letter,
                                                                   '<', '|'...), overlong or invalid UTF-8
http.oversized_field          evasion         low       -          request target, user agent or referrer longer
                                                                   than the matching window (8,192 characters;
                                                                   servers refuse such lines by default): padding
                                                                   that would push a payload out of sight. The
                                                                   other rules still read the field's first and
                                                                   last halves of the window
============================  ==============  ========  =========  =============================================

SSH events other than the four sshd outcomes carry what happened in ``Event.extra[SSH_EVENT_KEY]`` (a
parser hint from ``SSH_EVENT_HINTS``, never a raw value); without it only the outcome-based rules fire.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Final

import re2
from pydantic import BaseModel, ConfigDict

from transforms.decode import encoding_evasion, normalize_header, normalize_path, normalize_query
from transforms.errors import ConfigError
from transforms.linear_regex import INLINE_SPACE, LinearPattern, compile_linear
from transforms.model import Event, EventKind, SshOutcome

__all__ = [
    "RULES",
    "SSH_EVENT_HINTS",
    "SSH_EVENT_KEY",
    "Severity",
    "Signal",
    "SignalDetector",
    "SignalParams",
]


class Severity(StrEnum):
    """How much one occurrence matters on its own (before any counting per source)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Signal:
    """One rule that fired on one event. Carries no data from the event."""

    rule: str  # e.g. "http.sqli"
    category: str  # e.g. "injection"
    severity: Severity
    technique: str | None  # MITRE ATT&CK technique id, e.g. "T1190"


def _signal(rule: str, category: str, severity: Severity, technique: str | None) -> tuple[str, Signal]:
    return rule, Signal(rule, category, severity, technique)


# The registry: every rule id this module can emit. One Signal instance per rule is shared by all events
# (it is frozen), so firing allocates nothing.
RULES: Final[Mapping[str, Signal]] = MappingProxyType(
    dict(
        [
            _signal("ssh.auth_failed", "brute_force", Severity.LOW, "T1110"),
            _signal("ssh.invalid_user", "brute_force", Severity.MEDIUM, "T1110"),
            _signal("ssh.preauth_probe", "recon", Severity.LOW, "T1595"),
            _signal("http.auth_failure", "brute_force", Severity.LOW, "T1110"),
            _signal("http.sqli", "injection", Severity.HIGH, "T1190"),
            _signal("http.xss", "injection", Severity.MEDIUM, "T1190"),
            _signal("http.cmdi", "injection", Severity.HIGH, "T1190"),
            _signal("http.crlf", "injection", Severity.MEDIUM, "T1190"),
            _signal("http.path_traversal", "traversal", Severity.HIGH, "T1190"),
            _signal("http.rfi", "injection", Severity.HIGH, "T1190"),
            _signal("http.shellshock", "injection", Severity.HIGH, "T1190"),
            _signal("http.jndi", "injection", Severity.HIGH, "T1190"),
            _signal("http.sensitive_file", "discovery", Severity.MEDIUM, "T1083"),
            _signal("http.webshell", "backdoor", Severity.HIGH, "T1505.003"),
            _signal("http.admin_probe", "recon", Severity.LOW, "T1595.003"),
            _signal("http.scanner_ua", "recon", Severity.MEDIUM, "T1595.002"),
            _signal("http.bad_bot_ua", "recon", Severity.LOW, None),
            _signal("http.protocol_abuse", "protocol", Severity.LOW, "T1595"),
            _signal("http.oversized_field", "evasion", Severity.LOW, None),
        ]
    )
)

# Key of Event.extra under which an sshd parser names a line that is not one of the four outcomes.
SSH_EVENT_KEY: Final = "ssh_event"
# Hint value -> rule. Hints are fixed codes chosen by the parser, never text from the line.
SSH_EVENT_HINTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "not_allowed": "ssh.auth_failed",  # "User root from X not allowed because ..." (AllowUsers, DenyGroups)
        "root_refused": "ssh.auth_failed",  # "ROOT LOGIN REFUSED FROM X"
        "too_many_auth": "ssh.auth_failed",  # "Disconnecting: Too many authentication failures",
        # "maximum authentication attempts exceeded"
        # "Disconnected from / Connection closed by authenticating user root X [preauth]": the client gave up
        # in the middle of authentication, which is how one-password-per-connection guessing shows
        "auth_disconnect": "ssh.auth_failed",
        "no_ident": "ssh.preauth_probe",  # "Did not receive identification string from X": a port scan
        "bad_protocol": "ssh.preauth_probe",  # "Bad protocol version identification", "banner exchange: invalid"
        "kex_failed": "ssh.preauth_probe",  # "Unable to negotiate with X", "no matching key exchange method"
        "preauth_timeout": "ssh.preauth_probe",  # "Timeout before authentication for X"
        "refused_connect": "ssh.preauth_probe",  # tcp_wrappers "refused connect from X"
        # Not a hint on purpose: "POSSIBLE BREAK-IN ATTEMPT" (reverse DNS does not match) says more about
        # the client's DNS than its behaviour; fail2ban's sshd filter leaves it out for the same reason.
    }
)

_DEFAULT_PATTERNS_DIR: Final = Path(__file__).resolve().parent.parent / "config" / "patterns"

_DEFAULT_AUTH_PATHS: Final = (
    "/login",
    "/logon",
    "/signin",
    "/sign-in",
    "/sign_in",
    "/users/sign_in",
    "/user/login",
    "/account/login",
    "/accounts/login",
    "/auth",
    "/api/auth",
    "/api/login",
    "/api/token",
    "/oauth/token",
    "/session",
    "/sessions",
    "/wp-login.php",
    "/xmlrpc.php",
    "/admin",
    "/administrator",
    "/j_security_check",
    "/j_spring_security_check",
)


class SignalParams(BaseModel):
    """Settings of the per-record signal detector, validated once at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Folder of pattern lists; None means the package's config/patterns.
    patterns_dir: str | None = None
    # Login endpoints: a 401/403 there is an authentication failure. Each entry is a path ("/login") that
    # matches as whole segments anywhere in the request path ("/blog/login", "/login/", "/login.php").
    auth_paths: list[str] = list(_DEFAULT_AUTH_PATHS)
    # Rule ids to run; None runs every rule in RULES.
    enabled_rules: list[str] | None = None


# --------------------------------------------------------------------------------------------- loading


def _read_entries(directory: Path, name: str) -> list[tuple[int, str]]:
    """Non-blank, non-comment lines of a pattern file, with line numbers; ConfigError if absent or empty."""
    path = directory / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"patterns_dir: pattern file {name} is missing from {directory}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"patterns_dir: pattern file {name} cannot be read ({type(exc).__name__})") from None
    entries = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not entries:
        raise ConfigError(f"patterns_dir: pattern file {name} has no entries")
    return entries


def _literals(directory: Path, name: str, *, lower: bool = True) -> list[str]:
    return [entry.lower() if lower else entry for _, entry in _read_entries(directory, name)]


def _regex_alternation(directory: Path, name: str) -> str:
    """The lines of a ``*.regex.txt`` file as one alternation, each line checked on its own first."""
    parts = []
    for number, entry in _read_entries(directory, name):
        try:
            re.compile(entry)
        except re.error as exc:
            raise ConfigError(f"patterns_dir: {name} line {number}: invalid regular expression ({exc.msg})") from None
        try:
            compile_linear(entry)
        except re2.error:
            raise ConfigError(
                f"patterns_dir: {name} line {number}: not supported by the linear-time engine (RE2 has no"
                " lookarounds or backreferences)"
            ) from None
        parts.append(f"(?:{entry})")
    return "|".join(parts)


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex alternation of literal ``words`` factored into a prefix tree.

    Python's ``re`` tries alternatives one after the other; sharing prefixes makes a list of hundreds of
    literals cost about as much as its longest entry at each position, instead of the sum of them all.
    """
    trie: dict[str, dict] = {}  # nested: char -> subtree; "" marks the end of a word
    for word in words:
        if not word:
            continue
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a word

    def render(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + render(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        group = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a word ends here and longer ones continue
            return f"(?:{group})?"
        return group

    return render(trie)


# --------------------------------------------------------------------------------------------- matching

# Upper bound on the characters examined per field: Apache and nginx refuse request lines and header
# lines longer than 8 KiB by default (414 / 400), so this only bounds the cost of a hostile record. A
# longer field is read as its head and its tail (half the window each, see _head_and_tail) and raises
# http.oversized_field: padding can neither hide a payload at the end nor make matching cost more.
_MAX_FIELD_CHARS: Final = 8192


def _head_and_tail(text: str, budget: int, joint: str) -> str:
    """``text`` if it fits in ``budget`` characters, else its first and last ``budget / 2`` joined by
    ``joint`` (a separator of the field's syntax, so that no pattern reads the two ends as one token)."""
    if len(text) <= budget:
        return text
    head = budget // 2
    return f"{text[:head]}{joint}{text[len(text) - (budget - head) :]}"


# A raw '&' separates query parameters, a decoded one (%26) is data and may be a shell separator, so raw
# ones are replaced by this marker before decoding. \x01, not the "unit separator" \x1f: re's \s matches
# \x1c-\x1f, which would make the boundary look like a space to every pattern.
_PARAM_SEP: Final = "\x01"

_STANDARD_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# "HTTP/0.9" never appears in a valid request line (0.9 requests have no version token).
_VALID_VERSIONS: Final = frozenset({"HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/2.0", "HTTP/3", "HTTP/3.0"})
_ABSOLUTE_URI: Final = compile_linear(r"(?i)[a-z][a-z0-9+.-]{0,15}://")

# "../" as a path step (also "....//" once slashes are collapsed), "/.." at the end, Tomcat "..;/",
# and the hex spellings (0x2e = '.', 0x5c = '\') that some fuzzers use. Only searched in text that
# contains ".." or "0x2e" (two substring tests reject ordinary requests).
_TRAVERSAL_SEQ: Final = compile_linear(
    r"(?:^|[/=\x01:\s'\"])\.{2,}/|/\.{2,}$|/\.{2,}\x01|\.\.;|\.\.0x5c|0x2e0x2e|\.\.\x00"
)
# PHP stream wrappers and file:// as a parameter value: local file read (CrowdSec path_traversal.txt).
_LFI_WRAPPER: Final = compile_linear(r"(?:^|[=\x01])\s*(?:file|php|zip|phar|expect|data|glob|compress\.zlib)://")

# Remote file inclusion: a URL as a parameter value, when it looks like a payload rather than a redirect
# target (OAuth redirect_uri=https://..., share links). Always for ftp://; for http(s):// when the host
# is an IP literal (IPv4, or IPv6 with or without its brackets), the URL ends in '?' or a NUL (cuts off
# the suffix the script appends), it names a .txt/.inc/.sh file, or the parameter is one of the
# include-style names scanners fuzz (CRS 931100-931120).
# The URL runs stop at '=' so that a value of many "=http://" costs linear, not quadratic, time.
_RFI: Final = compile_linear(
    r"(?:^|[=\x01])\s*ftps?://"
    r"|(?:^|[=\x01])\s*https?://(?:\d{1,3}\.){3}\d{1,3}(?:[:/?\x01]|$)"
    r"|(?:^|[=\x01])\s*https?://(?:\[[0-9a-f:.]{2,45}\](?::\d{1,5})?"  # [2001:db8::1]:8080
    r"|[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7})(?:[/?\x01]|$)"  # 2001:db8::1, unbracketed
    r"|(?:^|[=\x01])\s*https?://[^\x01\s?=]{1,500}(?:\?|\x00)(?:\x01|$)"
    r"|(?:^|[=\x01])\s*https?://[^\x01\s?#=]{1,500}?\.(?:txt|inc|sh)(?:[?#\x01]|$)"
    r"|(?:^|\x01)[\w\[\].-]{0,40}?(?:include|inc|require|file|path|template|dir|root|base_?path|folder|conf"
    r"|config|mosconfig_absolute_path|globals)(?:\[[^\]=]{0,40}\])?=\s*https?://"
)

# Characters or words that every line of sqli.regex.txt needs (see that file's header). Plain whitespace
# is not enough: search terms have spaces, and the full file costs ~10 us per candidate.
_SQLI_TRIGGER: Final = compile_linear(
    r"['\"();#@|*$]|--|union|select|or\s|and\s|xor|waitfor|case\s|order\s|group\s|having|into\s|procedure"
    r"|drop\s|create\s|alter\s|truncate|delete\s|insert\s|null|information_schema|\.\.sys"
    r"|sys(?:objects|columns|databases|users|ibm)|pg_catalog|pg_shadow|sqlite_master|mysql\.user|all_tables"
    r"|dba_users|user_tables|msysaccessobjects"
)
# Characters or words that every line of xss.regex.txt needs (see that file's header).
_XSS_TRIGGER: Final = compile_linear(
    r"[<&\\(`:]|\x01(?:lt|#)|[\s\"'/;`]on[a-z]|document|window|innerhtml|srcdoc|fromcharcode"
)

_SHELLSHOCK: Final = compile_linear(r"\(\s*\)\s*\{")
# Log4Shell: "${jndi:", the other log4j lookups used to spell it ("${lower:j}", "${env:X:-j}", "${::-j}"),
# and any lookup opened inside another one's name ("${${", "${j${::-n}di:", "${jnd${upper:i}:"), which is
# how the default-value obfuscations nest.
_JNDI: Final = compile_linear(
    r"\$\{[\s$]*\{?(?:jndi|lower|upper|env|sys|date|main|ctx|java|base64|k8s|docker|spring|web|bundle|:{1,2}-)"
    r"|\$\{[^{}$\s\x01]{0,20}\$\{"
)

# XSS is looked for in a header only when it holds a '<' (decoded), a '\\' (JS escapes), an entity '<'
# (&lt; &#60;, the referrer's raw '&' being _PARAM_SEP) or an event handler after a quote, a space or ';'
# ("' onclick=", "; onload="): headers are full of ':', '(' and '&', which the target's trigger lets through.
_XSS_HEADER_ENTITY: Final = compile_linear(r"[&\x01](?:lt|#)")
_XSS_HEADER_HANDLER: Final = compile_linear(r"['\"`;\s]on[a-z]{3,30}\s{0,5}=")


class _Target:
    """The request target of an HTTP event, normalised once: what the target parts of the rules read."""

    __slots__ = ("oversized", "path", "query", "raw_path", "raw_query", "target")

    def __init__(self, url: str) -> None:
        self.oversized = len(url) > _MAX_FIELD_CHARS
        raw_path, raw_query = _split_target(url)
        if self.oversized:
            # The window is shared: the query gets what the path leaves, and at least half when both are long.
            query_budget = min(len(raw_query), max(_MAX_FIELD_CHARS // 2, _MAX_FIELD_CHARS - len(raw_path)))
            raw_path = _head_and_tail(raw_path, _MAX_FIELD_CHARS - query_budget, "/")
            raw_query = _head_and_tail(raw_query, query_budget, "&")
        self.raw_path = raw_path
        self.raw_query = raw_query
        self.path = normalize_path(raw_path)  # decoded, lower-case path
        # decoded, lower-case query; parameters separated by _PARAM_SEP
        self.query = normalize_query(raw_query.replace("&", _PARAM_SEP)) if raw_query else ""
        # path + _PARAM_SEP + query: the whole request target for rules that scan both
        self.target = f"{self.path}{_PARAM_SEP}{self.query}" if self.query else self.path


def _decode_user_agent(user_agent: str) -> str:
    """A user agent decoded and lower-case, keeping its '+'."""
    if "%" not in user_agent and "\\" not in user_agent:  # then decoding only lower-cases
        return user_agent.lower()
    return normalize_header(user_agent)


def _decode_referrer(referrer: str) -> str:
    """A referrer, a URL, decoded as a query is: '+' as a space, a raw '&' as ``_PARAM_SEP``, lower-case."""
    return normalize_query(referrer.replace("&", _PARAM_SEP))


def _split_target(url: str) -> tuple[str, str]:
    """Raw (path, query) of a request target; an absolute-URI loses its scheme and authority."""
    if url[:1] != "/" and _ABSOLUTE_URI.match(url):
        rest = url[url.find("://") + 3 :]  # the scheme holds no ':', so this is where the match ended
        slash = rest.find("/")
        question = rest.find("?")
        cut = min(i for i in (slash, question, len(rest)) if i >= 0)
        url = rest[cut:] if rest[cut : cut + 1] == "/" else "/" + rest[cut:]
    path, _, query = url.partition("?")
    return path, query


_TargetTest = Callable[[_Target], bool]
_TextTest = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class _Rule:
    """One HTTP rule, split by the value each part reads, so that a part's result can be kept per value.

    The rule fires when ``target`` holds on the request target, ``user_agent`` on the raw user agent, or
    ``header`` on the decoded user agent or referrer; with a ``gate`` (marker, percent-encoded marker), the
    header part counts only when the raw user agent or referrer holds one of them. A rule that also weighs
    the method, the status or the user (``decide``) reads the target through ``facts`` instead: a few bits
    (at most ``_FACT_BITS``) that ``decide`` combines with the event.
    """

    target: _TargetTest | None = None
    user_agent: _TextTest | None = None
    header: _TextTest | None = None
    gate: tuple[str, str] | None = None
    facts: Callable[[_Target], int] | None = None
    decide: Callable[[Event, int], bool] | None = None
    # Fires when the user agent or the referrer was longer than the matching window.
    header_cut: bool = False

    def fires(
        self, event: Event, target: _Target, user_agent: str, referrer: str, headers: list[str], header_cut: bool
    ) -> bool:
        """Whether the rule fires: its definition, which the detector's memoized path reproduces."""
        if self.decide is not None and self.facts is not None:
            return self.decide(event, self.facts(target))
        if self.target is not None and self.target(target):
            return True
        if self.header_cut and header_cut:
            return True
        if self.user_agent is not None and user_agent and self.user_agent(user_agent):
            return True
        if self.header is None:
            return False
        if self.gate is not None:
            marker, encoded = self.gate
            if not any(value and (marker in value or encoded in value.lower()) for value in (user_agent, referrer)):
                return False
        return any(self.header(value) for value in headers)


def _check_query(pattern: LinearPattern) -> _TargetTest:
    return lambda req: bool(req.query) and pattern.search(req.query)


# A run of path characters that may hold shell glob syntax: [..] bracket expressions, '?', '*'.
# These two stay in re: RE2's Python wrapper iterates and substitutes ~18x slower.
_GLOB_TOKEN: Final = re.compile(r"/[\w.~!^?*\[\]/-]{3,200}")
_GLOB_BRACKET: Final = re.compile(r"\[[^\]]{1,12}\]")


class _GlobPaths:
    """Finds shell-glob spellings of known paths in decoded text: /etc/pa[s]swd, /[?]tc/pa[?]swd,
    /et*/passwd, /bi[n]/bash (CRS 932130, 932190).

    The known paths are indexed by their first segment. A candidate (a path-like run that holds a glob
    character) is matched from each of its '/' on: its first segment against the index keys, then its
    next segments against the indexed paths under that key, with a bracket expression read as any one
    character (so "[?]" matches too: the shell reads it as a literal '?', but no one writes it by chance).
    Only text with '[', '?' or '*' gets past the first test. Segments without glob characters are looked
    up, not matched; at most ``_GLOB_BUDGET`` patterns are compiled per text, so a hostile request full of
    globs costs a bounded few milliseconds at worst.
    """

    __slots__ = ("_index",)

    def __init__(self, paths: Iterable[str]) -> None:
        grouped: dict[str, dict[int, set[str]]] = {}
        for path in paths:
            first, _, rest = path.strip("/").partition("/")
            if rest:
                grouped.setdefault(first, {}).setdefault(rest.count("/") + 1, set()).add(rest)
        # key -> segment count -> (the remainders, the same one per line for a (?m)^...$ search)
        self._index = {
            key: {count: (frozenset(rests), "\n".join(sorted(rests))) for count, rests in by_count.items()}
            for key, by_count in grouped.items()
        }

    def search(self, text: str) -> bool:
        """Whether ``text`` holds a glob spelling of an indexed path (a plain spelling does not count)."""
        if "[" not in text and "?" not in text and "*" not in text:
            return False
        budget = [_GLOB_BUDGET]  # a mutable count that _matches spends
        for token in _GLOB_TOKEN.finditer(text):
            spelled = _GLOB_BRACKET.sub("?", token.group(0))
            if "?" not in spelled and "*" not in spelled:
                continue
            segments = [segment for segment in spelled.split("/") if segment]
            for start in range(len(segments) - 1):
                if budget[0] <= 0:
                    return False
                if self._matches(segments[start], segments[start + 1 :], budget):
                    return True
        return False

    def _matches(self, first: str, rest: list[str], budget: list[int]) -> bool:
        if _is_glob(first):
            if first.strip("*") == "" or first.count("*") > 2:
                return False  # "/**/" is a SQL or C comment; more stars would only add backtracking
            budget[0] -= 1
            key_pattern = compile_linear(_glob_regex(first))
            keys = [key for key in self._index if key_pattern.fullmatch(key)]
        else:
            keys = [first] if first in self._index else []
        if not keys:
            return False
        for count in range(1, min(len(rest), 6) + 1):
            last = rest[count - 1]
            if last.strip("*") == "" or last.count("*") > 2:
                return False
            parts = [first, *rest[:count]]
            spelled = "".join(parts)
            if not _is_glob(spelled):
                continue  # the plain spelling is the OS-file list's business
            # a glob spelling keeps most of the name: "/???/??t" says too little to name a file
            if len(spelled) - spelled.count("?") - spelled.count("*") < 4:
                continue
            candidates = [entry for key in keys if (entry := self._index[key].get(count))]
            if not candidates:
                continue
            wanted = "/".join(rest[:count])
            if not _is_glob(wanted):
                if any(wanted in remainders for remainders, _ in candidates):
                    return True
                continue
            budget[0] -= 1
            if budget[0] < 0:
                return False
            pattern = compile_linear("(?m)^" + "/".join(map(_glob_regex, rest[:count])) + "$")
            if any(pattern.search(lines) for _, lines in candidates):
                return True
        return False


# Patterns _GlobPaths may compile for one text: real payloads need one or two.
_GLOB_BUDGET: Final = 12


def _is_glob(text: str) -> bool:
    return "?" in text or "*" in text


def _glob_regex(segment: str) -> str:
    """A regex for one path segment in glob syntax ('?' and '*' only; brackets were already read as '?')."""
    return "".join("[^/\\n]" if c == "?" else "[^/\\n]{0,40}" if c == "*" else re.escape(c) for c in segment)


def _check_auth_failure(auth_paths: LinearPattern) -> _Rule:
    def facts(req: _Target) -> int:
        return auth_paths.search(req.path) | (req.path.endswith("/wp-login.php") << 1)

    def decide(event: Event, facts: int) -> bool:
        status = event.status
        if status in (401, 403):
            # A 401 without credentials is the normal challenge; with a user name, a POST or on a login
            # endpoint it is a failed attempt.
            return event.method == "POST" or event.user is not None or bool(facts & 1)
        # WordPress answers a failed login with 200 and the form again; success is a 302.
        return status == 200 and event.method == "POST" and bool(facts & 2)

    return _Rule(facts=facts, decide=decide)


def _check_sqli(pattern: LinearPattern, trigger: LinearPattern) -> _Rule:
    """``pattern`` searched in path and query, only when the cheap ``trigger`` finds a candidate.

    A regex of dozens of alternatives costs microseconds per search in ``re``; the trigger lists what
    every alternative needs (a quote, a bracket, a space...), so paths like ``/img/a.png`` skip it. A path
    holding '+' is also tried with '+' read as a space: a form-encoded payload pasted into a path
    (``/item/1+union+select+1,2``); the plain path keeps its '+' for every other rule.
    """

    def target(req: _Target) -> bool:
        text = req.target
        if trigger.search(text) and pattern.search(text):
            return True
        if "+" not in req.path:
            return False
        spaced = req.path.replace("+", " ")
        return trigger.search(spaced) and pattern.search(spaced)

    return _Rule(target=target)


def _check_xss(pattern: LinearPattern, trigger: LinearPattern) -> _Rule:
    """xss.regex.txt in path and query (behind ``trigger``), and in the user agent and referrer when they
    hold a tag or a quoted event handler (``_xss_header_candidate``): headers are full of ':', '(' and '&',
    so the target's trigger would let every one through."""
    return _Rule(
        target=lambda req: trigger.search(req.target) and pattern.search(req.target),
        header=lambda value: _xss_header_candidate(value) and pattern.search(value),
    )


def _xss_header_candidate(header: str) -> bool:
    """Substring tests first: a user agent seldom holds '<', '\\', '&' or '='."""
    return (
        "<" in header
        or "\\" in header
        or (("&" in header or _PARAM_SEP in header) and _XSS_HEADER_ENTITY.search(header))
        or ("=" in header and _XSS_HEADER_HANDLER.search(header))
    )


def _check_cmdi(
    query: LinearPattern,
    header: LinearPattern,
    header_start: LinearPattern,
    extra: LinearPattern,
    bins: _GlobPaths,
) -> _Rule:
    """``query`` in the query; in the user agent and referrer the stricter ``header`` form (a command
    after a separator must take an argument: "; id)" is an Indonesian-language user agent) and the
    cmdi.regex.txt lines ``extra`` behind a few substring tests; glob spellings of /bin paths."""

    def in_query(req: _Target) -> bool:
        text = req.query
        return bool(text) and (query.search(text) or bins.search(text))

    def in_header(value: str) -> bool:
        return header.search(value) or header_start.match(value) or (_has_cmdi_marker(value) and extra.search(value))

    return _Rule(target=in_query, header=in_header)


def _has_cmdi_marker(value: str) -> bool:
    """What every line of cmdi.regex.txt needs: $( ${ifs `...` /bin/ /dev/tcp <?php (see that file)."""
    return "$" in value or "`" in value or "/bin/" in value or "/dev/" in value or "<?" in value


def _check_path_traversal(os_files: LinearPattern, globs: _GlobPaths) -> _Rule:
    """../ sequences, OS file names and PHP wrappers in the target; ../ and OS file names in the user agent
    and referrer; glob spellings of OS files (/etc/pa[s]swd) in the target."""

    def in_target(req: _Target) -> bool:
        target = req.target
        return (
            ((".." in target or "0x2e" in target) and _TRAVERSAL_SEQ.search(target))
            or os_files.search(target)
            or (bool(req.query) and _LFI_WRAPPER.search(req.query))
            or globs.search(target)
        )

    def in_header(value: str) -> bool:
        return (".." in value and _TRAVERSAL_SEQ.search(value)) or os_files.search(value)

    return _Rule(target=in_target, header=in_header)


# A header line or a status line right after a CR/LF in a parameter value (HTTP response splitting, header
# injection): a hyphenated name (set-cookie, content-length, x-...) or a one-word header name that no text
# line starts with by chance. A bare newline in a value is left alone: a textarea submitted by GET has them.
_CRLF_HEADER: Final = compile_linear(
    r"[\r\n]\s{0,5}(?:[a-z][a-z0-9]{0,30}-[a-z0-9-]{1,40}|location|refresh|cookie|host|expires|pragma|etag"
    r"|upgrade|connection)\s{0,5}:|[\r\n]\s{0,5}http/\d"
)
# A CR or LF in a parameter's name (before its '='), or a name-only parameter (CRS 921150).
_CRLF_NAME: Final = compile_linear(r"(?:^|\x01)[^=\x01]{0,500}?[\r\n]")


def _crlf_in_target(req: _Target) -> bool:
    if "\r" in req.path or "\n" in req.path:
        return True
    query = req.query
    return ("\r" in query or "\n" in query) and (_CRLF_NAME.search(query) or _CRLF_HEADER.search(query))


def _check_headers_and_target(pattern: LinearPattern, marker: str, encoded_marker: str) -> _Rule:
    """A pattern searched in the request target, the user agent and the referrer.

    Headers count only when one of them contains the pattern's ``marker`` (raw or percent-encoded).
    """
    search = pattern.search
    return _Rule(
        target=lambda req: marker in req.target and search(req.target),
        header=lambda value: marker in value and search(value),
        gate=(marker, encoded_marker),
    )


def _check_sensitive_file(pattern: LinearPattern) -> _Rule:
    return _Rule(target=lambda req: pattern.search(req.path))


def _check_webshell(names: frozenset[str]) -> _Rule:
    return _Rule(target=lambda req: req.path[req.path.rfind("/") + 1 :] in names)


def _check_admin_probe(contains: LinearPattern, exact: frozenset[str]) -> _Rule:
    def facts(req: _Target) -> int:
        return req.path.rstrip("/") in exact or contains.search(req.path)

    def decide(event: Event, facts: int) -> bool:
        # Only a miss or a refusal is a probe: the site's own admin answering 200/302 is ordinary use.
        return event.status in (None, 403, 404) and bool(facts)

    return _Rule(facts=facts, decide=decide)


def _check_scanner_ua(pattern: LinearPattern) -> _Rule:
    return _Rule(user_agent=lambda user_agent: pattern.search(user_agent.lower()))


def _check_bad_bot_ua(names: list[str]) -> _Rule:
    """Whole-word, case-sensitive names (CrowdSec's ``\\bName\\b``), all in one automaton.

    RE2 runs the ~450 names as one prefix tree in a single pass over the agent, whatever their number.
    ``(?<!\\w)name(?!\\w)`` is spelled without lookarounds: a search only says yes or no, so the
    neighbours can be consumed, and the automaton tries every alignment at once, so none is missed.
    """
    pattern = compile_linear(rf"(?:^|\W){_trie_pattern(names)}(?:$|\W)")

    def check(user_agent: str) -> bool:
        return pattern.search(user_agent)

    return _Rule(user_agent=check)


def _protocol_abuse_in_target(req: _Target) -> int:
    # A NUL byte (decoded), or an encoding that no client writes: a second layer over a letter or a '|'
    # ("%2541", "%257C"), a third layer, overlong or out-of-range UTF-8 ("%c0%af", "%f5%80%bf%bf").
    return "\x00" in req.target or encoding_evasion(req.raw_path) or encoding_evasion(req.raw_query)


def _protocol_abuse(event: Event, facts: int) -> bool:
    method = event.method
    url = event.url
    if method is None and event.status == 408:
        # Apache logs a connection closed before any request ("-" 408): browsers' speculative preconnects.
        return False
    if event.extra.get("request") == "malformed":
        return True
    if method is None:
        # A request line that the parser could not split into method, target and version, or an empty
        # one that the server rejected (nginx logs port scanners and TLS on the plain port as "" 400).
        return url is not None or event.status == 400
    if method not in _STANDARD_METHODS:  # CONNECT, TRACE, TRACK, PROPFIND, DEBUG, lower-case, garbage
        return True
    if event.http_version is not None and event.http_version not in _VALID_VERSIONS:
        return True
    if not url:
        return False
    # "GET http://other-host/" (open-proxy probe), "GET index.php" (no leading slash); "OPTIONS *" is valid.
    if url[0] != "/" and not (url == "*" and method == "OPTIONS"):
        return True
    return bool(facts)


# --------------------------------------------------------------------------------------------- building


def _compile_sensitive(entries: list[str]) -> LinearPattern:
    """One regex for the four entry kinds of sensitive_files.txt (see that file's header)."""
    folders, suffixes, names, prefixes = [], [], [], []
    for entry in entries:
        if entry.endswith("/"):
            folders.append(entry.strip("/"))
        elif entry.endswith("*"):
            prefixes.append(entry[:-1].lstrip("/"))
        elif entry.startswith((".", "~")):
            suffixes.append(entry)
        else:
            names.append(entry.lstrip("/"))
    parts = []
    if folders:
        parts.append(f"/{_trie_pattern(folders)}(?:/|$)")
    if suffixes:
        parts.append(f"{_trie_pattern(suffixes)}$")
    if names:
        parts.append(f"/{_trie_pattern(names)}$")
    if prefixes:
        parts.append(f"/{_trie_pattern(prefixes)}[^/]*$")
    return compile_linear("|".join(parts))


def _compile_os_files(entries: list[str]) -> LinearPattern:
    # An OS path must start a path component and end at one: etc/passwd, not etc/passwords-help.html.
    stems = {entry.strip("/") for entry in entries}
    # The path always starts with '/' and a query value follows '=' or the parameter separator, so no
    # '^' branch is needed; a pattern that starts with a character class lets re skip ahead quickly.
    return compile_linear(rf"[/=\x01:\s'\"]{_trie_pattern(stems)}(?:$|[^a-z0-9_-])")


def _build_cmdi(directory: Path) -> _Rule:
    commands = _literals(directory, "unix_shell_commands.txt")
    trie = _trie_pattern(commands)
    # A command right after a shell separator, optionally with its /bin path, followed by an argument or
    # the end of the value: "; id", "|/usr/bin/id", "&& cat /etc/passwd", "$(whoami)", "`ls`".
    # The blanks after a separator exclude newlines: "\s*" also ate '\n', itself a separator, so under re's
    # backtracking each newline of a run rescanned the rest of the run (quadratic). A match that crossed
    # newlines also matches from the last of them, so this finds the same commands.
    separator = rf"(?:[;|&`\n]|\$\(){INLINE_SPACE}*(?:(?:/usr(?:/local)?)?/s?bin/)?" + trie
    # What follows the command is consumed rather than looked at ahead: a search only answers yes or no.
    in_query = rf"{separator}(?:$|[\s;|&`<>()'\"\x01]|\$\{{?ifs)"
    # In a user agent or referrer ';' separates product comments ("(Linux; U; id)", "; ps-AF)"): there the
    # command must end the value, meet a shell operator, or take an argument that looks like one (an
    # option, a path, a variable, a quote, a URL). A header may also start with a command and an option
    # ("env --version"): no client names itself that way.
    in_header = rf"{separator}(?:$|[|&`<>]|\s{{1,5}}(?:[-/$.~'\"<>+`|&;]|[a-z]{{2,8}}://))"
    header_start = rf"\s{{0,5}}(?:(?:/usr(?:/local)?)?/s?bin/)?{trie}\s{{1,5}}-{{1,2}}[a-z]"
    extra = _regex_alternation(directory, "cmdi.regex.txt")
    bins = _GlobPaths(f"{folder}/{command}" for folder in _BIN_FOLDERS for command in commands)
    return _check_cmdi(
        compile_linear(f"{in_query}|{extra}"),
        compile_linear(in_header),
        compile_linear(header_start),
        compile_linear(extra),
        bins,
    )


_BIN_FOLDERS: Final = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin")


def _build_path_traversal(directory: Path) -> _Rule:
    entries = _literals(directory, "lfi_os_files.txt")
    return _check_path_traversal(_compile_os_files(entries), _GlobPaths(entries))


def _compile_auth_paths(auth_paths: list[str]) -> LinearPattern:
    stems = []
    for entry in auth_paths:
        stem = entry.strip().lower().strip("/")
        if not entry.startswith("/") or not stem:
            raise ConfigError("auth_paths: every entry must be a non-empty path starting with '/'")
        stems.append(stem)
    if not stems:  # matches nothing: only POSTs and named users count as failed logins
        return compile_linear(r"[^\x00-\x{10ffff}]")
    return compile_linear(rf"(?:^|/){_trie_pattern(stems)}(?:$|[/.;])")


# The memo of per-value results: at most this many values per kind (request target, user agent, referrer),
# each at most this long (longer ones, rare and mostly hostile, are evaluated every time). A full memo is
# emptied, not trimmed: cheap, and popular values come back at once.
_MEMO_ENTRIES: Final = 4096
_MEMO_KEY_CHARS: Final = 1024
# Bits of target facts that one deciding rule (_Rule.decide) reads.
_FACT_BITS: Final = 2
_FACT_MASK: Final = (1 << _FACT_BITS) - 1


class SignalDetector:
    """Turns one :class:`~transforms.model.Event` into the list of :class:`Signal` it shows.

    Build it once with :meth:`build`; calling it is synchronous and returns the same signals for the same
    event. What a rule finds in a request target, a user agent or a referrer depends on that value only, so
    the detector keeps it as a few bits per value in a bounded memo (these values repeat a lot: static
    assets, a handful of browsers, the site's own pages): a repeated value costs a dictionary look-up,
    and an event whose three values were seen before costs no decoding and no regex at all. The memo
    holds recent raw values in memory only; nothing reads it but the detector.

    >>> from datetime import UTC, datetime
    >>> detect = SignalDetector.build(SignalParams())
    >>> def get(url, **fields):
    ...     return Event(EventKind.HTTP, "192.0.2.1", datetime(2024, 1, 1, tzinfo=UTC), "GET", url, **fields)
    >>> [signal.rule for signal in detect(get("/.env", status=404))]
    ['http.sensitive_file']
    >>> [signal.rule for signal in detect(get("/item?id=1%27+or+%271%27%3D%271", user_agent="sqlmap/1.7"))]
    ['http.sqli', 'http.scanner_ua']
    >>> detect(get("/blog/2024/hello-world.html", status=200))
    []
    """

    __slots__ = (
        "_decided",
        "_gate_mask",
        "_gated",
        "_gates",
        "_header_cut_bit",
        "_header_tests",
        "_order",
        "_referrer_memo",
        "_rule_mask",
        "_rules",
        "_ssh_enabled",
        "_target_facts",
        "_target_memo",
        "_target_tests",
        "_user_agent_memo",
        "_user_agent_tests",
        "rule_ids",
    )

    rule_ids: tuple[str, ...]

    def __init__(
        self,
        rule_ids: tuple[str, ...],
        rules: tuple[tuple[Signal, _Rule], ...],
        ssh_enabled: frozenset[str],
    ) -> None:
        """Use :meth:`build`; this only stores prebuilt parts and lays out the memo's bits.

        Bit i stands for the i-th HTTP rule; above them come, for a gated rule, one bit for its gate and
        one for its header part, and for a deciding rule its ``_FACT_BITS`` target facts.
        """
        self.rule_ids = rule_ids
        self._rules = rules
        self._ssh_enabled = ssh_enabled
        self._order = tuple((1 << i, signal) for i, (signal, _) in enumerate(rules))
        self._rule_mask = (1 << len(rules)) - 1
        target_tests: list[tuple[int, _TargetTest]] = []
        target_facts: list[tuple[int, Callable[[_Target], int]]] = []
        decided: list[tuple[int, int, Callable[[Event, int], bool]]] = []
        user_agent_tests: list[tuple[int, _TextTest]] = []
        header_tests: list[tuple[int, _TextTest]] = []
        gates: list[tuple[int, str, str]] = []
        gated: list[tuple[int, int, int]] = []
        self._header_cut_bit = 0
        next_bit = len(rules)
        for rule_bit, (_, rule) in zip((bit for bit, _ in self._order), rules, strict=True):
            if rule.decide is not None and rule.facts is not None:
                target_facts.append((next_bit, rule.facts))
                decided.append((rule_bit, next_bit, rule.decide))
                next_bit += _FACT_BITS
                continue
            if rule.target is not None:
                target_tests.append((rule_bit, rule.target))
            if rule.header_cut:
                self._header_cut_bit = rule_bit
            if rule.user_agent is not None:
                user_agent_tests.append((rule_bit, rule.user_agent))
            if rule.header is not None and rule.gate is not None:
                gate_bit, hit_bit = 1 << next_bit, 1 << (next_bit + 1)
                next_bit += 2
                gates.append((gate_bit, *rule.gate))
                header_tests.append((hit_bit, rule.header))
                gated.append((rule_bit, gate_bit, hit_bit))
            elif rule.header is not None:
                header_tests.append((rule_bit, rule.header))
        self._target_tests = tuple(target_tests)
        self._target_facts = tuple(target_facts)
        self._decided = tuple(decided)
        self._user_agent_tests = tuple(user_agent_tests)
        self._header_tests = tuple(header_tests)
        self._gates = tuple(gates)
        self._gated = tuple(gated)
        self._gate_mask = sum(gate_bit for gate_bit, _, _ in gates)
        self._target_memo: dict[str, int] = {}
        self._user_agent_memo: dict[str, int] = {}
        self._referrer_memo: dict[str, int] = {}

    @classmethod
    def build(cls, params: SignalParams) -> SignalDetector:
        """Check ``params``, read and compile the pattern files of the enabled rules.

        Raises:
            ConfigError: an unknown rule id in ``enabled_rules`` (the message lists the valid ones), a
                bad ``auth_paths`` entry, or a pattern file that is missing, empty or invalid.
        """
        if params.enabled_rules is None:
            enabled = tuple(RULES)
        else:
            unknown = [rule for rule in params.enabled_rules if rule not in RULES]
            if unknown:
                raise ConfigError(
                    f"enabled_rules: unknown rule id(s) {', '.join(sorted(set(unknown)))}; valid: {', '.join(RULES)}"
                )
            # Registry order, so that signals come out in the same order whatever the config's order.
            enabled = tuple(rule for rule in RULES if rule in params.enabled_rules)
        directory = Path(params.patterns_dir) if params.patterns_dir is not None else _DEFAULT_PATTERNS_DIR
        if not directory.is_dir():
            raise ConfigError(f"patterns_dir: {directory} is not a directory")

        auth_paths = _compile_auth_paths(params.auth_paths)
        builders: dict[str, Callable[[], _Rule]] = {
            "http.auth_failure": lambda: _check_auth_failure(auth_paths),
            "http.sqli": lambda: _check_sqli(
                compile_linear(_regex_alternation(directory, "sqli.regex.txt")), _SQLI_TRIGGER
            ),
            "http.xss": lambda: _check_xss(
                compile_linear(_regex_alternation(directory, "xss.regex.txt")), _XSS_TRIGGER
            ),
            "http.cmdi": lambda: _build_cmdi(directory),
            "http.path_traversal": lambda: _build_path_traversal(directory),
            "http.crlf": lambda: _Rule(target=_crlf_in_target),
            "http.rfi": lambda: _Rule(target=_check_query(_RFI)),
            "http.shellshock": lambda: _check_headers_and_target(_SHELLSHOCK, "(", "%28"),
            "http.jndi": lambda: _check_headers_and_target(_JNDI, "${", "%7b"),
            "http.sensitive_file": lambda: _check_sensitive_file(
                _compile_sensitive(_literals(directory, "sensitive_files.txt"))
            ),
            "http.webshell": lambda: _check_webshell(frozenset(_literals(directory, "webshells.txt"))),
            "http.admin_probe": lambda: _check_admin_probe(
                compile_linear(_trie_pattern(_literals(directory, "admin_interfaces.txt"))),
                frozenset(entry.rstrip("/") for entry in _literals(directory, "admin_interfaces_exact.txt")),
            ),
            # CRS matches scanner names case-insensitively as substrings (@pmFromFile); the entries are
            # lower-cased and matched on the lower-cased agent (re.IGNORECASE is ~8x slower here).
            "http.scanner_ua": lambda: _check_scanner_ua(
                compile_linear(_trie_pattern(_literals(directory, "scanner_user_agents.txt")))
            ),
            # CrowdSec matches bad-bot names case-sensitively as whole words.
            "http.bad_bot_ua": lambda: _check_bad_bot_ua(_literals(directory, "bad_bot_user_agents.txt", lower=False)),
            "http.protocol_abuse": lambda: _Rule(facts=_protocol_abuse_in_target, decide=_protocol_abuse),
            "http.oversized_field": lambda: _Rule(target=lambda req: req.oversized, header_cut=True),
        }
        rules = tuple((RULES[rule], builders[rule]()) for rule in enabled if rule in builders)
        ssh_enabled = frozenset(rule for rule in enabled if rule.startswith("ssh."))
        return cls(enabled, rules, ssh_enabled)

    def __call__(self, event: Event) -> list[Signal]:
        """The signals ``event`` shows, in registry order, each rule at most once; ``[]`` for none."""
        if event.kind is EventKind.SSH:
            return self._ssh(event)
        if not self._rules:
            return []
        url = event.url or ""
        target_facts = self._target_memo.get(url)
        if target_facts is None:
            target_facts = _remember(self._target_memo, url, self._facts_of_target(url))
        header_facts = 0
        user_agent = event.user_agent
        if user_agent:
            facts = self._user_agent_memo.get(user_agent)
            if facts is None:
                facts = _remember(self._user_agent_memo, user_agent, self._facts_of_user_agent(user_agent))
            header_facts = facts
        referrer = event.referrer
        if referrer:
            facts = self._referrer_memo.get(referrer)
            if facts is None:
                facts = _remember(self._referrer_memo, referrer, self._facts_of_referrer(referrer))
            header_facts |= facts
        fired = (target_facts | header_facts) & self._rule_mask
        if header_facts & self._gate_mask:
            for rule_bit, gate_bit, hit_bit in self._gated:
                if header_facts & gate_bit and header_facts & hit_bit:
                    fired |= rule_bit
        for rule_bit, shift, decide in self._decided:
            if decide(event, (target_facts >> shift) & _FACT_MASK):
                fired |= rule_bit
        if not fired:
            return []
        return [signal for bit, signal in self._order if fired & bit]

    def _uncached(self, event: Event) -> list[Signal]:
        """What :meth:`__call__` returns, worked out rule by rule without the memo: its definition."""
        if event.kind is EventKind.SSH:
            return self._ssh(event)
        if not self._rules:
            return []
        target = _Target(event.url or "")
        raw_user_agent = event.user_agent or ""
        raw_referrer = event.referrer or ""
        header_cut = len(raw_user_agent) > _MAX_FIELD_CHARS or len(raw_referrer) > _MAX_FIELD_CHARS
        user_agent = _head_and_tail(raw_user_agent, _MAX_FIELD_CHARS, " ")
        referrer = _head_and_tail(raw_referrer, _MAX_FIELD_CHARS, "&")
        headers = []
        if user_agent:
            headers.append(_decode_user_agent(user_agent))
        if referrer:
            headers.append(_decode_referrer(referrer))
        return [
            signal
            for signal, rule in self._rules
            if rule.fires(event, target, user_agent, referrer, headers, header_cut)
        ]

    def _facts_of_target(self, url: str) -> int:
        target = _Target(url)
        facts = 0
        for bit, test in self._target_tests:
            if test(target):
                facts |= bit
        for shift, rule_facts in self._target_facts:
            facts |= rule_facts(target) << shift
        return facts

    def _facts_of_user_agent(self, raw: str) -> int:
        user_agent = _head_and_tail(raw, _MAX_FIELD_CHARS, " ")
        facts = self._facts_of_header(user_agent, _decode_user_agent(user_agent))
        if len(raw) > _MAX_FIELD_CHARS:
            facts |= self._header_cut_bit
        for bit, test in self._user_agent_tests:
            if test(user_agent):
                facts |= bit
        return facts

    def _facts_of_referrer(self, raw: str) -> int:
        referrer = _head_and_tail(raw, _MAX_FIELD_CHARS, "&")
        facts = self._facts_of_header(referrer, _decode_referrer(referrer))
        if len(raw) > _MAX_FIELD_CHARS:
            facts |= self._header_cut_bit
        return facts

    def _facts_of_header(self, raw: str, decoded: str) -> int:
        facts = 0
        for bit, test in self._header_tests:
            if test(decoded):
                facts |= bit
        if self._gates:
            lower = raw.lower()
            for bit, marker, encoded in self._gates:
                if marker in raw or encoded in lower:
                    facts |= bit
        return facts

    def _ssh(self, event: Event) -> list[Signal]:
        fired: set[str] = set()
        outcome = event.ssh_outcome
        # A failed public key is not a guess: clients offer each key they hold before the one that works
        # (fail2ban's sshd filter ignores them too, outside its "aggressive" mode).
        if (outcome is SshOutcome.FAILED and event.ssh_method != "publickey") or outcome is SshOutcome.AUTH_FAILURE:
            fired.add("ssh.auth_failed")
        if outcome is SshOutcome.INVALID_USER or event.invalid_user:
            fired.add("ssh.invalid_user")
        hint = event.extra.get(SSH_EVENT_KEY)
        if hint is not None and (rule := SSH_EVENT_HINTS.get(hint)) is not None:
            fired.add(rule)
        if not fired:
            return []
        return [RULES[rule] for rule in self.rule_ids if rule in fired and rule in self._ssh_enabled]


def _remember(memo: dict[str, int], key: str, facts: int) -> int:
    """Store ``facts`` under ``key`` unless ``key`` is too long; empty the memo first when it is full."""
    if len(key) <= _MEMO_KEY_CHARS:
        if len(memo) >= _MEMO_ENTRIES:
            memo.clear()
        memo[key] = facts
    return facts
