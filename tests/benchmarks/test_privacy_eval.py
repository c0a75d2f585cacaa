"""The privacy benchmark harness: policy variants, utility arithmetic, and a run on a slice of the Elastic log.

The figures themselves are measurements (``python -m benchmarks.privacy_eval``), not asserted here; what is
asserted holds for any input: the ground truth covers every released pseudonym, and a release with k enforced
shows no profile below k.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from benchmarks import datasets as ds
from benchmarks import privacy_eval as pe
from transforms.policy import validate_policy


def test_variants_turn_the_release_off_for_before_and_set_k_for_after() -> None:
    """BEFORE validates with the release and aggregates off; each AFTER carries its own k."""
    found = pe.variants(pe.POLICY.read_text(), (5, 10))
    if len(found) == 1:
        pytest.skip("the policy has no [analytics.release] yet")
    policies = {v.name: validate_policy(tomllib.loads(v.policy), v.name) for v in found}
    assert not policies["before"].analytics.release.enabled
    assert not policies["before"].analytics.aggregates.enabled
    assert policies["after k=10"].analytics.release.k == 10
    assert policies["after k=5"].analytics.release.enabled
    assert [v.unit for v in found] == ["client.visitor", "client.pseudonym", "client.pseudonym"]


def test_setting_a_missing_key_fails_loudly() -> None:
    """A policy edit that matches nothing is an error, never a silent BEFORE equal to AFTER."""
    with pytest.raises(ValueError, match="no k in"):
        pe._set_in_table("[analytics.release]\nenabled = true\n", "analytics.release", "k", "10")


def test_utility_against_known_counts() -> None:
    """Coverage is the share of true pageviews in released cells; errors are relative to the truth."""
    truth = {
        ("2015-05-17", None, None): (10, 4),
        ("2015-05-17", "country", "DE"): (8, 3),
        ("2015-05-17", "country", "FR"): (2, 1),
    }
    released = {("2015-05-17", None, None): (10, 5), ("2015-05-17", "country", "DE"): (6, 3)}
    result = pe.utility(truth, released)
    assert result["pageviews_error"] == [0.0]
    assert result["visitors_max_abs_error"] == 0.25
    assert result["country"]["pageviews_share_released"] == 0.8
    assert result["country"]["pageviews_mare"] == 0.25
    assert result["country"]["visitors_mare"] == 0.0


def test_released_counts_read_day_rows_only() -> None:
    """Hour windows and multi-dimension rows are not daily single-dimension counts."""
    day = {"start": "2015-05-17T00:00:00Z", "end": "2015-05-18T00:00:00Z"}
    hour = {"start": "2015-05-17T10:00:00Z", "end": "2015-05-17T11:00:00Z"}
    rows = [
        {"window": day, "dimensions": {}, "pageviews": 10, "visitors": 4},
        {"window": day, "dimensions": {"country": "DE"}, "pageviews": 8, "visitors": 3},
        {"window": day, "dimensions": {"path": "/a"}, "pageviews": 8, "visitors": 3},
        {"window": hour, "dimensions": {"country": "DE"}, "pageviews": 1, "visitors": 1},
    ]
    assert pe.released_counts(rows) == {
        ("2015-05-17", None, None): (10, 4),
        ("2015-05-17", "country", "DE"): (8, 3),
    }


def test_missing_shared_data_skips_cleanly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the shared folder the benchmark exits 0 and says why."""
    monkeypatch.setenv("PSEUDO_SHARED_DATA", str(tmp_path / "absent"))
    assert pe.main(["--out", str(tmp_path)]) == 0
    assert "skipped" in capsys.readouterr().out
    assert not (tmp_path / "privacy.json").exists()


@pytest.mark.shared_data
def test_a_slice_of_the_elastic_days(tmp_path: Path) -> None:
    """A few hundred lines of both days: every variant runs, truth covers the release, k holds where enforced."""
    if ds.shared_dir() is None:
        pytest.skip("shared data not present")
    doc = pe.run(limit=400, seed=3, ks=(5,), command="pytest")
    names = [v["variant"] for v in doc["variants"]]
    assert names[0] == "before"
    for result in doc["variants"]:
        # Every released pseudonym is one the benchmark derived from the raw log: the attacks are scored.
        assert result["truth_coverage"] == 1.0
        report = result["report"]
        assert report["records"] == round(result["released_per_record"] * doc["lines"])
        for attack in report["linking"].values():
            for share in ("found", "right", "relinked"):
                assert attack[share] is None or 0.0 <= attack[share] <= 1.0
        if result["variant"] != "before":
            assert report["k_distribution"]["min_k"] is None or report["k_distribution"]["min_k"] >= result["k"]
            assert report["aggregates"]["cells_below_k"] == 0
    before = doc["variants"][0]
    # BEFORE is the utility truth itself: its own daily counts are exact.
    assert before["utility"]["pageviews_max_abs_error"] == 0.0
    assert before["utility"]["visitors_max_abs_error"] == 0.0
    md, js = pe.write_results(doc, tmp_path)
    text = md.read_text()
    assert js.exists()
    for label, _, _ in pe.table_rows(doc):
        assert f"| {label} |" in text
