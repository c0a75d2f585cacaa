"""Counters the worker exposes: every input record is counted in exactly one route, with its reason."""

from __future__ import annotations

from collections import Counter
from typing import Any

from transforms.process import Outcome, Route
from transforms.release import ClosedWindow


class RouteCounters:
    """In-process counters (bounded label sets: routes and reason codes, never data)."""

    def __init__(self) -> None:
        self.input = 0
        self.routes: Counter[str] = Counter()
        self.reasons: Counter[tuple[str, str]] = Counter()
        self.analytics_records = 0
        self.abuse_records = 0
        self.alerts = 0  # stateful detections (counted where the detector runs)
        self.undecodable_observations = 0  # observation batches the detector could not read (skipped)
        self.detector_failures = 0  # observations the detector raised on (skipped, the subject's state kept)
        # The k-anonymous release (counted where the release stage runs).
        self.analytics_held = 0  # analytics records sent to the release windows (counted where the ingest runs)
        self.analytics_suppressed = 0  # analytics records held back from the per-record release (counts keep them)
        self.release_late = 0  # of those: records that arrived after their window was released
        self.release_rows_read = 0  # rows the release stage read (a restart reads its open windows' rows again)
        self.release_windows = 0
        self.aggregate_rows = 0
        self.last_window_min_k: int | None = None
        self.last_window_suppressed_share: float | None = None

    def count(self, outcome: Outcome) -> None:
        self.input += 1
        self.routes[outcome.route.value] += 1
        if outcome.reason is not None:
            self.reasons[(outcome.route.value, outcome.reason)] += 1
        if outcome.release_rows:  # held records are counted again when their window is released
            self.analytics_held += len(outcome.release_rows)
        else:
            self.analytics_records += len(outcome.analytics)
        self.abuse_records += len(outcome.abuse)

    def closed(self, window: ClosedWindow) -> None:
        if window.stats is None:
            self.aggregate_rows += len(window.records)
            return
        stats = window.stats
        self.release_windows += 1
        self.analytics_records += stats.released
        self.analytics_suppressed += stats.suppressed
        self.last_window_min_k = stats.min_k
        self.last_window_suppressed_share = stats.suppressed / stats.records if stats.records else 0.0

    def late(self, records: int) -> None:
        self.release_late += records
        self.analytics_suppressed += records

    def summary(self) -> dict[str, Any]:
        """The file mode's ``summary.json`` shape: input == analytics + quarantine + filtered (records)."""
        return {
            "input": self.input,
            "analytics": self.routes[Route.ANALYTICS.value],
            "abuse": self.abuse_records + self.alerts,
            "abuse_events": self.abuse_records,
            "abuse_alerts": self.alerts,
            "quarantine": self.routes[Route.QUARANTINE.value],
            "filtered": self.routes[Route.FILTERED.value],
            "analytics_records": self.analytics_records,
            "analytics_held": self.analytics_held,
            "analytics_suppressed": self.analytics_suppressed,
            "analytics_late": self.release_late,
            "release_rows_read": self.release_rows_read,
            "release_windows": self.release_windows,
            "aggregate_rows": self.aggregate_rows,
            "detector_failures": self.detector_failures,
            "reasons": {f"{route}:{reason}": n for (route, reason), n in sorted(self.reasons.items())},
        }

    def prometheus(self, app_id: str) -> str:
        lines = [
            "# HELP pseudonymizer_input_records_total Input records read.",
            "# TYPE pseudonymizer_input_records_total counter",
            f'pseudonymizer_input_records_total{{app="{app_id}"}} {self.input}',
            "# HELP pseudonymizer_routed_records_total Input records by route and reason.",
            "# TYPE pseudonymizer_routed_records_total counter",
        ]
        for route in Route:
            reasons = {r: n for (rt, r), n in self.reasons.items() if rt == route.value}
            if not reasons:
                n = self.routes[route.value]
                lines.append(f'pseudonymizer_routed_records_total{{app="{app_id}",route="{route.value}"}} {n}')
            for reason, n in sorted(reasons.items()):
                lines.append(
                    f'pseudonymizer_routed_records_total{{app="{app_id}",route="{route.value}",reason="{reason}"}} {n}'
                )
        lines += [
            "# TYPE pseudonymizer_output_records_total counter",
            f'pseudonymizer_output_records_total{{app="{app_id}",topic="analytics"}} {self.analytics_records}',
            f'pseudonymizer_output_records_total{{app="{app_id}",topic="abuse",kind="event"}} {self.abuse_records}',
            f'pseudonymizer_output_records_total{{app="{app_id}",topic="abuse",kind="alert"}} {self.alerts}',
            f'pseudonymizer_output_records_total{{app="{app_id}",topic="aggregates"}} {self.aggregate_rows}',
            "# TYPE pseudonymizer_undecodable_observation_batches_total counter",
            f'pseudonymizer_undecodable_observation_batches_total{{app="{app_id}"}} {self.undecodable_observations}',
            "# TYPE pseudonymizer_detector_failed_observations_total counter",
            f'pseudonymizer_detector_failed_observations_total{{app="{app_id}"}} {self.detector_failures}',
            "# HELP pseudonymizer_release_suppressed_records_total Analytics records not released one by one.",
            "# TYPE pseudonymizer_release_suppressed_records_total counter",
            f'pseudonymizer_release_suppressed_records_total{{app="{app_id}"}} {self.analytics_suppressed}',
            "# TYPE pseudonymizer_release_late_records_total counter",
            f'pseudonymizer_release_late_records_total{{app="{app_id}"}} {self.release_late}',
            "# TYPE pseudonymizer_release_windows_total counter",
            f'pseudonymizer_release_windows_total{{app="{app_id}"}} {self.release_windows}',
        ]
        if self.last_window_min_k is not None:
            lines += [
                "# HELP pseudonymizer_release_window_min_k Fewest units sharing a profile in the last window.",
                "# TYPE pseudonymizer_release_window_min_k gauge",
                f'pseudonymizer_release_window_min_k{{app="{app_id}"}} {self.last_window_min_k}',
            ]
        if self.last_window_suppressed_share is not None:
            lines += [
                "# TYPE pseudonymizer_release_window_suppressed_ratio gauge",
                f'pseudonymizer_release_window_suppressed_ratio{{app="{app_id}"}} '
                f"{self.last_window_suppressed_share:.6f}",
            ]
        return "\n".join(lines) + "\n"
