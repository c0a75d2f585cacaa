"""pipeline/oauth.py: the MSK IAM token provider, with AWS's signer replaced by a stand-in (no AWS here)."""

from __future__ import annotations

import asyncio
import sys
import time
import types

import pytest

from config.settings import Settings
from pipeline import kafka_clients, oauth
from transforms.errors import ConfigError


class _Signer:
    calls: list[str]

    def __init__(self, lifetime_s: float) -> None:
        self.calls = []
        self.lifetime_s = lifetime_s

    def generate_auth_token(self, region: str) -> tuple[str, int]:
        self.calls.append(region)
        return f"signed-url-{len(self.calls)}", int((time.time() + self.lifetime_s) * 1000)


@pytest.fixture
def signer(monkeypatch: pytest.MonkeyPatch) -> _Signer:
    stand_in = _Signer(lifetime_s=900)
    module = types.ModuleType("aws_msk_iam_sasl_signer")
    module.MSKAuthTokenProvider = stand_in  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer", module)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    return stand_in


def test_the_settings_name_it_and_every_client_gets_it(signer: _Signer) -> None:
    settings = Settings.from_env(
        {
            "PSEUDO_BROKER": "kafka://b-1.example.kafka.eu-west-1.amazonaws.com:9098",
            "PSEUDO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "PSEUDO_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "PSEUDO_KAFKA_SASL_OAUTH_TOKEN_PROVIDER": "pipeline.oauth:msk_iam",
        }
    )
    provider = kafka_clients.client_options(settings.kafka)["sasl_oauth_token_provider"]
    assert isinstance(provider, oauth.CachedTokenProvider)
    assert asyncio.run(provider.token()) == "signed-url-1"
    assert signer.calls == ["eu-west-1"]


def test_a_token_is_reused_until_shortly_before_it_expires(signer: _Signer) -> None:
    provider = oauth.msk_iam()

    async def twice() -> list[str]:
        return [await provider.token(), await provider.token()]

    assert asyncio.run(twice()) == ["signed-url-1", "signed-url-1"]
    signer.lifetime_s = oauth.REFRESH_BEFORE_EXPIRY_S / 2  # the next token is already due for renewal
    provider = oauth.msk_iam()
    assert asyncio.run(twice()) == ["signed-url-2", "signed-url-3"]
    assert "signed-url" not in repr(provider)


def test_without_a_region_or_the_signer_it_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigError, match="AWS_REGION"):
        oauth.msk_iam()
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer", None)  # import fails
    with pytest.raises(ConfigError, match=r"pseudonymizer\[msk\]"):
        oauth.msk_iam()
