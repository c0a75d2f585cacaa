"""Builds everything a run needs from settings, once: policy, keyring, geo, processor, sealer.

Shared by the stream worker and the file mode so both run exactly the same configuration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from config import load_policy
from config.settings import Settings
from pipeline.keystore import load_keyring
from transforms.detect import Detector
from transforms.event_id import EventIds
from transforms.geo import GeoLocator
from transforms.keyring import Keyring
from transforms.policy import Policy
from transforms.process import RecordProcessor
from transforms.quarantine import QuarantineSealer

log = logging.getLogger("pseudonymizer")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    policy: Policy
    keyring: Keyring
    geo: GeoLocator | None
    processor: RecordProcessor
    sealer: QuarantineSealer
    detector: Detector | None  # None when the policy disables stateful detection
    event_ids: EventIds  # every output record's event_id (pipeline/routing.py, the release, the detector's alerts)


def open_geo(settings: Settings, policy: Policy) -> GeoLocator | None:
    if settings.geo_city_db is None and settings.geo_asn_db is None:
        log.warning("geo: no database configured (PSEUDO_GEO_CITY_DB / PSEUDO_GEO_ASN_DB); geo fields disabled")
        return None
    geo = GeoLocator.open(
        str(settings.geo_city_db) if settings.geo_city_db else None,
        str(settings.geo_asn_db) if settings.geo_asn_db else None,
        coordinate_decimals=policy.geo.coordinate_decimals,
    )
    for problem in geo.problems:
        log.warning("geo: %s", problem)
    if geo.enabled:
        log.info("geo: databases built %s", ", ".join(f"{k}={v}" for k, v in sorted(geo.build_dates.items())))
    return geo


def build_runtime(settings: Settings, *, keys_path: Path | None = None, policy_path: Path | None = None) -> Runtime:
    """Validate everything up front; raises ConfigError/KeyringError (with a message, no secrets)."""
    policy = load_policy(policy_path or settings.policy)
    keyring = load_keyring(settings, keys_path)
    geo = open_geo(settings, policy)
    processor = RecordProcessor.build(policy, keyring, geo)
    sealer = QuarantineSealer(keyring.quarantine_key())
    detector = Detector.build(policy.detection) if policy.detection.enabled else None
    log.info("keys: keyring %s loaded (secret material not shown)", keyring.id)
    event_ids = EventIds(keyring.event_id_key_material())
    return Runtime(settings, policy, keyring, geo, processor, sealer, detector, event_ids)
