"""Counters the worker exposes: every input record is counted in exactly one route, with its reason.

``MetricsEndpoint`` serves them (``/metrics`` for Prometheus, ``/summary`` as JSON) with aiohttp, which faust
already brings. On loopback it serves plain HTTP as it always has; bound anywhere else it refuses to start unless
TLS (aiohttp's own ``ssl_context``), a bearer token, or both are configured: the counters describe the traffic
(volumes, attack reasons, suppression), and a port open to a network should not hand them to anyone who asks.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import ssl
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from config.settings import Settings
from transforms.errors import ConfigError
from transforms.event_time import Lateness
from transforms.process import Outcome, Route
from transforms.release import ClosedWindow

log = logging.getLogger("pseudonymizer")

# A token shorter than this is guessable; `openssl rand -hex 32` gives 64 characters.
MIN_TOKEN_CHARS = 32
EXPOSED_WITHOUT_PROTECTION = (
    "PSEUDO_METRICS_HOST={host} binds the metrics endpoint beyond loopback; it is served there only with TLS "
    "(PSEUDO_METRICS_TLS_CERT_FILE and PSEUDO_METRICS_TLS_KEY_FILE) or a bearer token (PSEUDO_METRICS_TOKEN_FILE), "
    "or both. Set one of them, or PSEUDO_METRICS_HOST=127.0.0.1 (or PSEUDO_METRICS_PORT=0 to turn it off)."
)


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
        self.detector_replayed = 0  # observations whose input position was already applied (skipped)
        self.detector_late: Counter[str] = Counter()  # not applied in event-time order, per Lateness reason
        self.detector_send_retries = 0  # sends of alerts or detector state retried after a failure
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
            "detector_late": {reason.value: self.detector_late[reason.value] for reason in Lateness},
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
            "# HELP pseudonymizer_detector_replayed_observations_total Observations already applied: skipped.",
            "# TYPE pseudonymizer_detector_replayed_observations_total counter",
            f'pseudonymizer_detector_replayed_observations_total{{app="{app_id}"}} {self.detector_replayed}',
            "# HELP pseudonymizer_detector_late_observations_total Observations not applied in event-time order.",
            "# TYPE pseudonymizer_detector_late_observations_total counter",
            *(
                f'pseudonymizer_detector_late_observations_total{{app="{app_id}",reason="{reason.value}"}} '
                f"{self.detector_late[reason.value]}"
                for reason in Lateness
            ),
            "# TYPE pseudonymizer_detector_send_retries_total counter",
            f'pseudonymizer_detector_send_retries_total{{app="{app_id}"}} {self.detector_send_retries}',
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


def is_loopback(host: str) -> bool:
    """True only for names that cannot be reached from another machine ("" and "0.0.0.0" mean every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to any interface: treat it as exposed


def _refuse_encrypted_key() -> NoReturn:
    # Without a callback, OpenSSL would prompt on the terminal for the key's password and the worker would hang.
    raise ConfigError("PSEUDO_METRICS_TLS_KEY_FILE: the key is encrypted; give an unencrypted key in a secret file")


def _tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # OpenSSL's own error for a missing file names neither the file nor which of the two it was.
    for setting, path in (("PSEUDO_METRICS_TLS_CERT_FILE", cert_file), ("PSEUDO_METRICS_TLS_KEY_FILE", key_file)):
        if not path.is_file():
            raise ConfigError(f"{setting}: no such file: {path}")
    try:
        context.load_cert_chain(cert_file, key_file, password=_refuse_encrypted_key)
    except PermissionError as exc:
        raise ConfigError(
            f"PSEUDO_METRICS_TLS_CERT_FILE/PSEUDO_METRICS_TLS_KEY_FILE: not readable: {exc.filename}"
        ) from None
    except ssl.SSLError as exc:
        # OpenSSL's reason (e.g. KEY_VALUES_MISMATCH, NO_START_LINE) names the problem, never the key.
        raise ConfigError(
            f"PSEUDO_METRICS_TLS_CERT_FILE/PSEUDO_METRICS_TLS_KEY_FILE: cannot load the certificate and key "
            f"({exc.reason or exc.__class__.__name__})"
        ) from None
    return context


def _read_token(path: Path) -> bytes:
    try:
        token = path.read_bytes().strip()
    except FileNotFoundError:
        raise ConfigError(f"PSEUDO_METRICS_TOKEN_FILE: no such file: {path}") from None
    except OSError as exc:
        raise ConfigError(f"PSEUDO_METRICS_TOKEN_FILE: cannot read {path}: {exc.strerror}") from None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"PSEUDO_METRICS_TOKEN_FILE: the token in {path} is shorter than {MIN_TOKEN_CHARS} characters "
            "(generate one with `openssl rand -hex 32`)"
        )
    return token


def _bearer_middleware(token: bytes) -> Middleware:
    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        # compare_digest takes as long for a near miss as for a far one: the token cannot be guessed byte by byte.
        if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), token):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="pseudonymizer"'})
        return await handler(request)

    return require_token


@dataclass(frozen=True, repr=False)  # repr=False: the token must not reach a log through a repr
class MetricsEndpoint:
    """``/metrics`` and ``/summary``, checked and prepared once by ``build``; ``start`` binds and serves."""

    host: str
    port: int
    app_id: str
    counters: RouteCounters
    tls: ssl.SSLContext | None
    token: bytes | None

    @classmethod
    def build(cls, settings: Settings, counters: RouteCounters) -> MetricsEndpoint | None:
        """None when PSEUDO_METRICS_PORT=0; raises ConfigError (naming the setting) on an unsafe or broken setup."""
        if not settings.metrics_port:
            return None
        cert, key = settings.metrics_tls_cert_file, settings.metrics_tls_key_file
        if (cert is None) != (key is None):
            raise ConfigError("PSEUDO_METRICS_TLS_CERT_FILE and PSEUDO_METRICS_TLS_KEY_FILE: give both or neither")
        tls = _tls_context(cert, key) if cert is not None and key is not None else None
        token = _read_token(settings.metrics_token_file) if settings.metrics_token_file is not None else None
        if tls is None and token is None and not is_loopback(settings.metrics_host):
            raise ConfigError(EXPOSED_WITHOUT_PROTECTION.format(host=settings.metrics_host or '""'))
        return cls(settings.metrics_host, settings.metrics_port, settings.app_id, counters, tls, token)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/metrics"

    def application(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(text=self.counters.prometheus(self.app_id), content_type="text/plain")

        async def summary(_: web.Request) -> web.Response:
            return web.json_response(self.counters.summary())

        web_app = web.Application(middlewares=[_bearer_middleware(self.token)] if self.token else [])
        web_app.router.add_get("/metrics", metrics)
        web_app.router.add_get("/summary", summary)
        return web_app

    async def start(self) -> web.AppRunner:
        """Bind and serve; the caller keeps the runner (``await runner.cleanup()`` stops it)."""
        runner = web.AppRunner(self.application(), access_log=None)  # no access log: it would hold client headers
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port, ssl_context=self.tls).start()
        log.info("metrics: %s (%s)", self.url, "bearer token required" if self.token else "no token")
        return runner
