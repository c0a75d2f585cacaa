"""Timestamp readers for the input parsers: fast, allocation-light, and never raising on bad input.

Every reader returns an aware UTC :class:`~datetime.datetime`, or ``None`` when the text is not a
timestamp it understands (the caller then falls back to the ingest time and flags the event).
Apache and syslog stamps are read by slicing fixed positions instead of ``strptime``, which is an
order of magnitude slower and sits on the per-line path.

Known answers:

>>> parse_apache_time("17/May/2015:10:05:03 +0200").isoformat()
'2015-05-17T08:05:03+00:00'
>>> parse_iso_time("2024-03-01T10:00:00.5Z").isoformat()
'2024-03-01T10:00:00.500000+00:00'
>>> parse_epoch(1431857103000).isoformat()  # epoch milliseconds
'2015-05-17T10:05:03+00:00'
>>> parse_bsd_stamp("Dec 10 06:55:46")
(12, 10, 6, 55, 46)
>>> parse_apache_error_time("Sat Jul 20 21:34:49.453232 2013").isoformat()  # error logs: no zone, read as UTC
'2013-07-20T21:34:49.453232+00:00'
>>> parse_nginx_error_time("2021/03/16 09:15:14").isoformat()
'2021-03-16T09:15:14+00:00'
>>> ingest = datetime(2026, 1, 1, 0, 2, tzinfo=UTC)
>>> infer_syslog_year((12, 31, 23, 59, 0), ingest, 300).year  # the line is from last year
2025
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MONTHS: dict[str, int] = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}

# A number above this is not epoch seconds (that would be year 5138): it is milliseconds, then
# microseconds, then nanoseconds. Loggers pick one of the four and the magnitudes do not overlap
# for any date between 1973 and 5138.
_EPOCH_SECONDS_MAX = 1e11
_EPOCH_MILLIS_MAX = 1e14
_EPOCH_MICROS_MAX = 1e17

# Leap years can be 8 years apart (2096 -> 2104), so a "Feb 29" stamp may need that many steps back.
_YEAR_SEARCH_DEPTH = 9


def parse_apache_time(text: str) -> datetime | None:
    """Read Apache's ``%d/%b/%Y:%H:%M:%S %z`` (``17/May/2015:10:05:03 +0000``) as UTC."""
    if len(text) != 26 or text[2] != "/" or text[6] != "/" or text[11] != ":" or text[20] != " ":
        return None
    month = MONTHS.get(text[3:6])
    if month is None:
        return None
    try:
        stamp = datetime(
            int(text[7:11]),
            month,
            int(text[0:2]),
            int(text[12:14]),
            int(text[15:17]),
            int(text[18:20]),
            tzinfo=UTC,
        )
        zone = text[21:26]
        if zone == "+0000":
            return stamp
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    except (ValueError, OverflowError):
        return None
    sign = zone[0]
    try:
        if sign == "+":
            return stamp - offset
        if sign == "-":
            return stamp + offset
    except OverflowError:  # year 1 or 9999 shifted out of range
        return None
    return None


def parse_iso_time(text: str) -> datetime | None:
    """Read ISO 8601 / RFC 3339 (``Z``, offsets, fractions). A stamp without an offset is taken as UTC."""
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        # ECS, Vector and Fluent Bit write UTC; a naive stamp is far more likely UTC than local time
        return stamp.replace(tzinfo=UTC)
    try:
        return stamp.astimezone(UTC)
    except OverflowError:
        return None


def parse_epoch(value: float) -> datetime | None:
    """Read epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude."""
    magnitude = abs(value)
    if magnitude >= _EPOCH_MICROS_MAX:
        value = value / 1e9
    elif magnitude >= _EPOCH_MILLIS_MAX:
        value = value / 1e6
    elif magnitude >= _EPOCH_SECONDS_MAX:
        value = value / 1e3
    try:
        return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def parse_time_text(text: str) -> datetime | None:
    """Read a timestamp string of any supported kind: ISO 8601, epoch digits, or Apache ``%d/%b/%Y...``."""
    if not text:
        return None
    first = text[0]
    if first.isdigit() and len(text) > 4 and text[4] == "-":
        return parse_iso_time(text)
    if first.isdigit() and len(text) > 2 and text[2] == "/":
        return parse_apache_time(text)
    if _is_decimal(text):
        return parse_epoch(float(text))
    return parse_iso_time(text)


def parse_apache_error_time(text: str) -> datetime | None:
    """Read an Apache error-log stamp, ``Tue Mar 16 09:15:14 2021`` or (2.4) ``Tue Mar 16 09:15:14.123456 2021``.

    The stamp has no zone (it is the server's local time): it is read as UTC, as syslog stamps are.
    """
    size = len(text)
    if size < 24 or text[3] != " " or text[7] != " " or text[10] != " " or text[13] != ":" or text[16] != ":":
        return None
    if text[-5] != " ":
        return None
    month = MONTHS.get(text[4:7])
    fraction = text[19:-5]  # "" or ".123456"
    if month is None or (fraction and (fraction[0] != "." or not 2 <= len(fraction) <= 7)):
        return None
    day_text = text[8:10].lstrip()
    parts = (day_text, text[11:13], text[14:16], text[17:19], text[-4:], fraction[1:] or "0")
    if not all(part.isascii() and part.isdigit() for part in parts):
        return None
    try:
        return datetime(
            int(parts[4]),
            month,
            int(day_text),
            int(parts[1]),
            int(parts[2]),
            int(parts[3]),
            int(parts[5].ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def parse_nginx_error_time(text: str) -> datetime | None:
    """Read an nginx error-log stamp ``2021/03/16 09:15:14`` (local time without a zone: read as UTC)."""
    if len(text) != 19 or text[4] != "/" or text[7] != "/" or text[10] != " " or text[13] != ":" or text[16] != ":":
        return None
    parts = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
    if not all(part.isascii() and part.isdigit() for part in parts):
        return None
    year, month, day, hour, minute, second = (int(part) for part in parts)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def parse_bsd_stamp(text: str) -> tuple[int, int, int, int, int] | None:
    """Read a syslog (RFC 3164) ``Mmm dd HH:MM:SS`` prefix into (month, day, hour, minute, second).

    The year is not in the stamp: :func:`infer_syslog_year` supplies it. Ranges are checked there,
    when the date is built.
    """
    if len(text) < 15 or text[3] != " " or text[6] != " " or text[9] != ":" or text[12] != ":":
        return None
    month = MONTHS.get(text[0:3])
    if month is None:
        return None
    day_text = text[4:6]
    if day_text[0] == " ":  # syslog pads single-digit days with a space ("Jul  3")
        day_text = day_text[1]
    parts = (day_text, text[7:9], text[10:12], text[13:15])
    if not all(part.isascii() and part.isdigit() for part in parts):
        return None
    return month, int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3])


def infer_syslog_year(
    stamp: tuple[int, int, int, int, int], reference: datetime, max_future_skew_s: int
) -> datetime | None:
    """Give a year-less stamp the latest year that is at most ``max_future_skew_s`` after ``reference``.

    Syslog stamps carry no year and no zone: they are read as UTC. A line stamped just before New
    Year and read just after belongs to the previous year; a "Feb 29" stamp goes back to the latest
    leap year. Returns ``None`` when no year makes a valid date (e.g. "Feb 30").
    """
    month, day, hour, minute, second = stamp
    try:
        limit = reference + timedelta(seconds=max_future_skew_s)
    except OverflowError:
        return None
    for year in range(limit.year, limit.year - _YEAR_SEARCH_DEPTH, -1):
        try:
            candidate = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            # an impossible hour or day never becomes valid; Feb 29 does, in a leap year
            if month == 2 and day == 29 and hour < 24 and minute < 60 and second < 60:
                continue
            return None
        if candidate <= limit:
            return candidate
    return None


def _is_decimal(text: str) -> bool:
    """True for ``1431857103`` or ``1431857103.25`` (epoch as text), ASCII digits only."""
    whole, _, fraction = text.partition(".")
    return whole.isascii() and whole.isdigit() and (not fraction or (fraction.isascii() and fraction.isdigit()))
