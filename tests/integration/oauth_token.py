"""A test stand-in for an identity provider: unsigned OAUTHBEARER tokens for the secured test broker.

The broker started by ``KAFKA_SECURE=1 scripts/kafka.sh start`` validates OAUTHBEARER tokens with Kafka's
unsecured-token validator, which accepts an unsigned JWT (``alg: none``) and takes the principal from ``sub``.
Production brokers validate signed tokens from a real provider instead (MSK IAM, Okta, Keycloak ...); the worker's
side is the same: ``PSEUDO_KAFKA_SASL_OAUTH_TOKEN_PROVIDER=package.module:factory`` names a callable that returns an
aiokafka ``AbstractTokenProvider``: here one factory per principal (``tests.integration.oauth_token:worker``).
"""

from __future__ import annotations

import base64
import time
from functools import partial

import orjson
from aiokafka.abc import AbstractTokenProvider

LIFETIME_S = 3600


def _segment(claims: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(claims)).decode().rstrip("=")


class UnsecuredTestToken(AbstractTokenProvider):
    def __init__(self, subject: str) -> None:
        self.subject = subject

    async def token(self) -> str:
        now = int(time.time())
        claims = {"sub": self.subject, "iat": now, "exp": now + LIFETIME_S}
        return f"{_segment({'alg': 'none'})}.{_segment(claims)}."


# One factory per principal of scripts/kafka_tls.py, named so that the settings can point at it.
worker = partial(UnsecuredTestToken, "worker")
analyst = partial(UnsecuredTestToken, "analyst")
security = partial(UnsecuredTestToken, "security")
operator = partial(UnsecuredTestToken, "operator")
shipper = partial(UnsecuredTestToken, "shipper")
admin = partial(UnsecuredTestToken, "admin")
