"""Closed vocabularies for client-chosen enums: the HTTP method and version (transforms.model)."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import transforms.model
from transforms.model import HTTP_METHODS, OTHER, classify_method, classify_version

# (method as sent, class)
METHODS = [
    ("GET", "GET"),  # RFC 9110
    ("HEAD", "HEAD"),
    ("POST", "POST"),  # detect.py counts POSTs: it must stay POST
    ("PUT", "PUT"),
    ("DELETE", "DELETE"),
    ("CONNECT", "CONNECT"),  # kept: a proxy probe is worth seeing (signals flag it too)
    ("OPTIONS", "OPTIONS"),
    ("TRACE", "TRACE"),
    ("PATCH", "PATCH"),  # RFC 5789
    ("PROPFIND", "PROPFIND"),  # WebDAV, RFC 4918
    ("PROPPATCH", "PROPPATCH"),
    ("MKCOL", "MKCOL"),
    ("COPY", "COPY"),
    ("MOVE", "MOVE"),
    ("LOCK", "LOCK"),
    ("UNLOCK", "UNLOCK"),
    ("get", OTHER),  # methods are case-sensitive
    ("Get", OTHER),
    ("DEBUG", OTHER),  # IIS debugging verb: not in the vocabulary
    ("PRI", OTHER),  # HTTP/2 preface sent to an HTTP/1 server
    ("203.0.113.77", OTHER),  # an address
    ("bob@example.com", OTHER),  # an e-mail
    ("AKIA2B7QX4MZK5RTV3NP", OTHER),  # a key id
    ("", OTHER),  # empty
    ("GET ", OTHER),  # padded
    (None, None),  # no request line: the field is left out
]

# (version as logged, canonical)
VERSIONS = [
    ("HTTP/1.0", "HTTP/1.0"),
    ("HTTP/1.1", "HTTP/1.1"),
    ("HTTP/2", "HTTP/2"),
    ("HTTP/2.0", "HTTP/2"),  # Apache writes HTTP/2.0
    ("HTTP/3", "HTTP/3"),
    ("HTTP/3.0", "HTTP/3"),
    ("HTTP/0.9", OTHER),
    ("HTTP/1.2", OTHER),
    ("http/1.1", OTHER),  # case-sensitive, as the protocol is
    ("HTTP/1.1 ", OTHER),
    ("10.1.2.3", OTHER),  # an address in the version field
    (None, None),
]


@pytest.mark.parametrize(("method", "expected"), METHODS)
def test_classify_method(method: str | None, expected: str | None) -> None:
    """A method in the vocabulary is kept; anything else is OTHER; None stays None."""
    assert classify_method(method) == expected


@pytest.mark.parametrize(("version", "expected"), VERSIONS)
def test_classify_version(version: str | None, expected: str | None) -> None:
    """HTTP/1.0, 1.1, 2 and 3 in canonical form; anything else is OTHER."""
    assert classify_version(version) == expected


@given(st.text(max_size=40))
def test_method_class_is_always_in_the_vocabulary(text: str) -> None:
    """Whatever a client sends, the class is one of a fixed set of names."""
    assert classify_method(text) in HTTP_METHODS | {OTHER}
    assert classify_version(text) in {"HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3", OTHER}


def test_docstring_examples() -> None:
    """The module's examples run."""
    assert doctest.testmod(transforms.model).failed == 0
