"""Settings and policy files, validated once into frozen models at start-up."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from transforms.errors import ConfigError

if TYPE_CHECKING:
    from transforms.policy import Policy

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_POLICY = CONFIG_DIR / "policy.toml"


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file (the shipped default when ``path`` is None)."""
    from transforms.policy import validate_policy  # the policy models import every transform

    source = Path(path) if path else DEFAULT_POLICY
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"policy file not found: {source}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"policy {source} is not valid TOML: {exc}") from None
    return validate_policy(data, str(source))
