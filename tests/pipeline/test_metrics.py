"""Route counters: every outcome counted once, with bounded labels only."""

from __future__ import annotations

from pipeline.metrics import RouteCounters
from transforms.process import Outcome, Route


def test_summary_balances_and_prometheus_lists_reasons() -> None:
    counters = RouteCounters()
    counters.count(Outcome(Route.ANALYTICS, analytics=[{}, {}], abuse=[{}]))
    counters.count(Outcome(Route.QUARANTINE, "invalid_json"))
    counters.count(Outcome(Route.FILTERED, "no_client_event"))
    counters.count(Outcome(Route.FILTERED, "kind_not_in_analytics", abuse=[{}, {}]))
    summary = counters.summary()
    assert summary["input"] == 4 == summary["analytics"] + summary["quarantine"] + summary["filtered"]
    assert (summary["analytics_records"], summary["abuse"]) == (2, 3)
    text = counters.prometheus("app")
    assert 'pseudonymizer_input_records_total{app="app"} 4' in text
    assert 'route="quarantine",reason="invalid_json"} 1' in text
    assert 'route="analytics"} 1' in text
    assert 'topic="abuse",kind="event"} 3' in text
