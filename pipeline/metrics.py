"""Counters the worker exposes: every input record is counted in exactly one route, with its reason."""

from __future__ import annotations

from collections import Counter
from typing import Any

from transforms.process import Outcome, Route


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

    def count(self, outcome: Outcome) -> None:
        self.input += 1
        self.routes[outcome.route.value] += 1
        if outcome.reason is not None:
            self.reasons[(outcome.route.value, outcome.reason)] += 1
        self.analytics_records += len(outcome.analytics)
        self.abuse_records += len(outcome.abuse)

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
            "# TYPE pseudonymizer_undecodable_observation_batches_total counter",
            f'pseudonymizer_undecodable_observation_batches_total{{app="{app_id}"}} {self.undecodable_observations}',
            "# TYPE pseudonymizer_detector_failed_observations_total counter",
            f'pseudonymizer_detector_failed_observations_total{{app="{app_id}"}} {self.detector_failures}',
        ]
        return "\n".join(lines) + "\n"
