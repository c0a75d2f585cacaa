"""Known answers for the timestamp readers used by the parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from transforms.timestamps import (
    infer_syslog_year,
    parse_apache_error_time,
    parse_apache_time,
    parse_bsd_stamp,
    parse_epoch,
    parse_iso_time,
    parse_nginx_error_time,
    parse_time_text,
)

T0 = datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("17/May/2015:10:05:03 +0000", T0),  # the common case
        ("17/May/2015:12:05:03 +0200", T0),  # east of UTC
        ("17/May/2015:05:35:03 -0430", T0),  # west of UTC, with minutes
        ("29/Feb/2016:00:00:00 +0000", datetime(2016, 2, 29, tzinfo=UTC)),  # leap day
        ("29/Feb/2015:00:00:00 +0000", None),  # no leap day in 2015
        ("17/Foo/2015:10:05:03 +0000", None),  # unknown month
        ("17/may/2015:10:05:03 +0000", None),  # month names are case-sensitive in Apache output
        ("17/May/2015:24:05:03 +0000", None),  # hour 24
        ("17/May/2015:10:05:03 0000", None),  # no sign
        ("17/May/2015:10:05:03 *0000", None),  # a bad sign
        ("17/May/2015:10:05:03 +00:00", None),  # wrong length
        ("17/May/2015 10:05:03 +0000", None),  # wrong separator
        ("01/Jan/0001:00:00:00 +0100", None),  # shifted before year 1
        ("", None),  # nothing
    ],
)
def test_parse_apache_time(text: str, expected: datetime | None) -> None:
    """Apache %t stamps are read by position and converted to UTC; anything else is None."""
    assert parse_apache_time(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sun May 17 10:05:03 2015", T0),  # Apache 2.2 (and 2.0)
        ("Sun May 17 10:05:03.123456 2015", T0.replace(microsecond=123456)),  # Apache 2.4 microseconds
        ("Sun May 17 10:05:03.5 2015", T0.replace(microsecond=500000)),  # a shorter fraction
        ("Sun May  7 10:05:03 2015", T0.replace(day=7)),  # a blank-padded day
        ("Xyz May 17 10:05:03 2015", T0),  # the weekday is not checked (the date says it)
        ("Sun Foo 17 10:05:03 2015", None),  # unknown month
        ("Sun Feb 29 10:05:03 2015", None),  # no leap day in 2015
        ("Sun May 17 24:05:03 2015", None),  # hour 24
        ("Sun May 17 10:05:03. 2015", None),  # a dot without digits
        ("Sun May 17 10:05:03.1234567 2015", None),  # more than microseconds
        ("Sun May 17 10:05:03,1 2015", None),  # a comma
        ("Sun May 17 10:05:03 15", None),  # a two-digit year
        ("", None),  # nothing
    ],
)
def test_parse_apache_error_time(text: str, expected: datetime | None) -> None:
    """Apache error-log stamps carry no zone and are read as UTC; anything else is None."""
    assert parse_apache_error_time(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015/05/17 10:05:03", T0),  # nginx error log
        ("2015/02/29 10:05:03", None),  # no leap day in 2015
        ("2015/05/17 10:05:60", None),  # second 60
        ("2015-05-17 10:05:03", None),  # ISO dashes are another reader's
        ("2015/05/17 10:05:03 ", None),  # wrong length
        ("2015/05/17T10:05:03", None),  # wrong separator
        ("2015/０5/17 10:05:03", None),  # non-ASCII digits
    ],
)
def test_parse_nginx_error_time(text: str, expected: datetime | None) -> None:
    """nginx error-log stamps carry no zone and are read as UTC; anything else is None."""
    assert parse_nginx_error_time(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-05-17T10:05:03Z", T0),  # Zulu
        ("2015-05-17T10:05:03.000Z", T0),  # fraction
        ("2015-05-17T12:05:03+02:00", T0),  # offset
        ("2015-05-17 10:05:03", T0),  # space separator, naive: UTC
        ("2015-05-17T10:05:03.123456789Z", T0.replace(microsecond=123456)),  # nanoseconds truncated
        ("2015-05-17T25:00:00Z", None),  # hour 25
        ("yesterday", None),  # prose
    ],
)
def test_parse_iso_time(text: str, expected: datetime | None) -> None:
    """ISO 8601 stamps become aware UTC; a naive stamp is taken as UTC."""
    assert parse_iso_time(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1431857103, T0),  # seconds
        (1431857103.5, T0.replace(microsecond=500000)),  # fractional seconds
        (1431857103000, T0),  # milliseconds
        (1431857103000000, T0),  # microseconds
        (1431857103000000000, T0),  # nanoseconds
        (0, datetime(1970, 1, 1, tzinfo=UTC)),  # the epoch (implausible, but a time)
        (1e300, None),  # out of range
    ],
)
def test_parse_epoch(value: float, expected: datetime | None) -> None:
    """Epoch numbers are told apart by magnitude."""
    assert parse_epoch(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-05-17T10:05:03Z", T0),  # ISO
        ("17/May/2015:10:05:03 +0000", T0),  # Apache
        ("1431857103", T0),  # epoch seconds as text
        ("1431857103.000", T0),  # with a fraction
        ("1431857103000", T0),  # epoch millis as text
        ("١٤٣١٨٥٧١٠٣", None),  # non-ASCII digits are not an epoch
        ("Sun, 17 May 2015 10:05:03 GMT", None),  # RFC 2822 is not supported
        ("", None),  # nothing
    ],
)
def test_parse_time_text(text: str, expected: datetime | None) -> None:
    """A JSON time string is read as ISO, Apache or epoch digits."""
    assert parse_time_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dec 10 06:55:46", (12, 10, 6, 55, 46)),  # two-digit day
        ("Jul  3 04:08:03", (7, 3, 4, 8, 3)),  # space-padded day
        ("Jul 03 04:08:03", (7, 3, 4, 8, 3)),  # zero-padded day
        ("Jul  3 04:08:03 host", (7, 3, 4, 8, 3)),  # followed by the host
        ("Jul  3 4:08:03", None),  # one-digit hour
        ("Jux  3 04:08:03", None),  # unknown month
        ("Jul -3 04:08:03", None),  # a sign is not a digit
        ("Jul  3 04:08", None),  # too short
    ],
)
def test_parse_bsd_stamp(text: str, expected: tuple[int, int, int, int, int] | None) -> None:
    """The RFC 3164 stamp is split by position; ranges are checked later."""
    assert parse_bsd_stamp(text) == expected


def test_infer_syslog_year_rejects_dates_no_year_has() -> None:
    """Feb 30 and hour 24 exist in no year; Feb 29 exists in leap years only."""
    ref = datetime(2026, 11, 27, tzinfo=UTC)
    assert infer_syslog_year((2, 30, 0, 0, 0), ref, 300) is None
    assert infer_syslog_year((3, 1, 24, 0, 0), ref, 300) is None
    assert infer_syslog_year((2, 29, 0, 0, 0), ref, 300) == datetime(2024, 2, 29, tzinfo=UTC)
    assert infer_syslog_year((2, 29, 0, 0, 0), datetime(2104, 3, 1, tzinfo=UTC), 0) == datetime(2104, 2, 29, tzinfo=UTC)
    assert infer_syslog_year((2, 29, 0, 0, 0), datetime(2104, 2, 28, tzinfo=UTC), 0) == datetime(
        2096, 2, 29, tzinfo=UTC
    )  # 2100 is not a leap year: eight years back
