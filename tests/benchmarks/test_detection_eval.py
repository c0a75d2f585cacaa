"""The detection benchmark harness: runs on a tiny sample and writes well-formed results.

The figures themselves are measurements (``python -m benchmarks.detection_eval``), not asserted here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks import datasets as ds
from benchmarks import detection_eval as de
from transforms.parse import ParseParams, build_parser

RATIO_FIELDS = ("detected", "baseline", "false_pos", "baseline_false_pos")
ROW_FIELDS = {"benchmark", "subset", *RATIO_FIELDS, "precision", "baseline_precision", "alerts", "ttd_s", "note"}


def _check_ratio(value: Any) -> None:
    if value is None:
        return
    assert set(value) == {"hits", "total", "rate"}
    assert 0 <= value["hits"] <= value["total"]
    assert value["rate"] is None if value["total"] == 0 else value["rate"] == value["hits"] / value["total"]


def _check_document(doc: dict[str, Any]) -> None:
    assert doc["schema"] == de.SCHEMA
    assert {"command", "generated", "machine", "limit", "seed", "flag_rules", "sections"} <= set(doc)
    assert {"cpu", "cores", "python", "commit"} <= set(doc["machine"])
    assert [s["name"] for s in doc["sections"]] == list(de.SECTIONS)
    for section in doc["sections"]:
        assert section["skipped"] is None or (isinstance(section["skipped"], str) and not section["rows"])
        for row in section["rows"]:
            assert set(row) == ROW_FIELDS
            for name in RATIO_FIELDS:
                _check_ratio(row[name])
            for name in ("precision", "baseline_precision"):
                assert row[name] is None or 0.0 <= row[name] <= 1.0
            if row["ttd_s"] is not None:
                assert row["ttd_s"]["median"] <= row["ttd_s"]["p90"]


@pytest.mark.shared_data
def test_tiny_run_writes_well_formed_results(tmp_path: Path) -> None:
    """A run on a few dozen items per set fills every section present and writes matching md and json."""
    if ds.shared_dir() is None:
        pytest.skip("shared data not present")
    doc = de.run(limit=30, seed=7, command="pytest")
    _check_document(doc)
    ran = [s for s in doc["sections"] if not s["skipped"]]
    assert ran, "every section was skipped although the data folder exists"
    for section in ran:
        assert section["rows"], section["name"]
    md, js = de.write_results(doc, tmp_path)
    assert json.loads(js.read_text(encoding="utf-8")) == json.loads(json.dumps(doc))
    table = [line for line in md.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    rows = sum(len(s["rows"]) or 1 for s in doc["sections"])
    assert len(table) == 1 + rows  # the header and one line per row (or per skipped section)
    cells = [len(re.split(r"(?<!\\)\|", line)) for line in table]
    assert set(cells) == {cells[0]}  # every line has the header's number of cells


def test_without_shared_data_every_section_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No data folder: the run still produces a document, with every section skipped and a reason."""
    monkeypatch.setenv("PSEUDO_SHARED_DATA", str(tmp_path / "absent"))
    doc = de.run(limit=5)
    _check_document(doc)
    assert all(s["skipped"] for s in doc["sections"])
    md, _ = de.write_results(doc, tmp_path / "out")
    assert "skipped" in md.read_text(encoding="utf-8")


def test_apache_escaping_matches_mod_log_config() -> None:
    """Quotes, backslashes, control and non-ASCII bytes are escaped as Apache writes them."""
    assert ds.apache_escape(b'a"b\\c\x01\t\xc3\xa9 d') == 'a\\"b\\\\c\\x01\\t\\xc3\\xa9 d'


def test_combined_line_reads_back_through_the_parser() -> None:
    """The harness's log line gives the parser the same request, agent and referrer."""
    line = ds.combined_line(
        ip="203.0.113.7",
        time=datetime(2024, 1, 15, 12, tzinfo=UTC),
        request=b"GET /a?q=%27+or+1%3D1 HTTP/1.1",
        status=200,
        user_agent=b"Mozilla/5.0 (X11)",
        referer=b"https://example.org/",
    )
    (event,) = build_parser(ParseParams())(line, datetime(2024, 1, 16, tzinfo=UTC))
    assert (event.method, event.url, event.http_version) == ("GET", "/a?q=%27+or+1%3D1", "HTTP/1.1")
    assert (event.user_agent, event.referrer, event.status) == ("Mozilla/5.0 (X11)", "https://example.org/", 200)


@pytest.mark.parametrize(
    ("line", "source"),
    [
        # access line: the leading address
        ('192.0.2.9 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 7 "-" "curl/8"', "192.0.2.9"),
        # sshd: the address after "from", not the month name (whose letters are hex digits)
        ("Dec 10 07:07:38 LabSZ sshd[24206]: Failed password for root from 5.36.59.76 port 42393 ssh2", "5.36.59.76"),
        # pam_unix: rhost, which may be a host name
        ("Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; rhost=a.example.net ", "a.example.net"),
        # tcp_wrappers: the address in parentheses, not the host name
        ("Dec 16 14:10:24 myhost sshd[16379]: refused connect from example.com (192.168.1.1)", "192.168.1.1"),
        # IPv6 is normalised
        ('2001:0db8::0001 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 7', "2001:db8::1"),
        ("Dec 10 06:55:48 LabSZ sshd[24200]: Received signal 15; terminating.", None),
    ],
)
def test_line_source_reads_the_client(line: str, source: str | None) -> None:
    """The ground-truth source of a line is read without the product's parser."""
    assert de.line_source(line) == source


def test_sample_is_seeded_and_keeps_order() -> None:
    """Sampling is reproducible and keeps the input order; no limit keeps everything."""
    items = list(range(100))
    first = ds.sample(items, 10, seed=3)
    assert first == ds.sample(items, 10, seed=3) == sorted(first)
    assert len(first) == 10
    assert ds.sample(items, None, seed=3) == items
