"""OAUTHBEARER token providers a deployment can name in ``PSEUDO_KAFKA_SASL_OAUTH_TOKEN_PROVIDER``.

The setting names any importable factory (``package.module:callable``) that returns an aiokafka
``AbstractTokenProvider``; this module ships the one managed Kafka needs most often:

* ``pipeline.oauth:msk_iam``: Amazon MSK with IAM access control (port 9098). Tokens are SigV4-signed URLs from
  AWS's own signer library (``pip install 'pseudonymizer[msk]'``), made from the standard AWS credential chain
  (environment, ECS task role, EKS service account, instance profile); the region comes from ``AWS_REGION``.
  On MSK IAM, what a principal may do is an IAM policy (``kafka-cluster:ReadData`` ...), not a Kafka ACL.

A token is reused until shortly before it expires: the signer may reach the instance metadata service, which should
not happen on every connection.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Callable

from aiokafka.abc import AbstractTokenProvider

from transforms.errors import ConfigError

REFRESH_BEFORE_EXPIRY_S = 60.0


class CachedTokenProvider(AbstractTokenProvider):
    """Calls a blocking ``sign() -> (token, expiry in ms since the epoch)`` in a thread, reusing the token until
    ``REFRESH_BEFORE_EXPIRY_S`` before it expires. ``repr`` never shows the token."""

    def __init__(self, sign: Callable[[], tuple[str, int]]) -> None:
        self._sign = sign
        self._token: str | None = None
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cached={self._token is not None})"

    async def token(self) -> str:
        if self._token is None or time.time() >= self._expires_at - REFRESH_BEFORE_EXPIRY_S:
            token, expiry_ms = await asyncio.to_thread(self._sign)
            self._token, self._expires_at = token, expiry_ms / 1000
        return self._token


def msk_iam() -> CachedTokenProvider:
    """Amazon MSK IAM: ``PSEUDO_KAFKA_SASL_OAUTH_TOKEN_PROVIDER=pipeline.oauth:msk_iam`` with ``AWS_REGION`` set."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError("pipeline.oauth:msk_iam: set AWS_REGION to the MSK cluster's region")
    try:
        signer = importlib.import_module("aws_msk_iam_sasl_signer")
    except ImportError:
        raise ConfigError(
            "pipeline.oauth:msk_iam needs AWS's signer: pip install 'pseudonymizer[msk]' "
            "(aws-msk-iam-sasl-signer-python)"
        ) from None
    return CachedTokenProvider(lambda: signer.MSKAuthTokenProvider.generate_auth_token(region))
