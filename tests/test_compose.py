"""docker-compose.yml and the Dockerfile stay consistent with the broker script, the CLI and the settings.

There is no Docker engine in CI, so these tests read the files: the Kafka image is the version that
scripts/kafka/pom.xml pins, the broker is configured like scripts/kafka.sh, every ``pseudonymizer``
subcommand exists, every ``PSEUDO_*`` variable is a setting, and the image's Python is the supported one.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SUBCOMMAND = re.compile(r"\bpseudonymizer\s+([a-z][a-z-]*)")
INTERPOLATED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a name -> value map, whichever of compose's two spellings it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {name: value for name, _, value in (str(item).partition("=") for item in env)}
    return {name: "" if value is None else str(value) for name, value in env.items()}


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command") or ""
    return " ".join(command) if isinstance(command, list) else str(command)


def dockerfile_cmd() -> str:
    match = re.search(r"^CMD\s+(.+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile has a CMD"
    return match.group(1)


def test_the_stack_has_a_broker_keys_a_worker_and_a_generator(compose: dict[str, Any]) -> None:
    assert {"kafka", "keys", "worker", "generator"} <= set(services(compose))


def test_kafka_image_is_the_version_the_broker_script_pins(compose: dict[str, Any]) -> None:
    pom = (ROOT / "scripts" / "kafka" / "pom.xml").read_text()
    pinned = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert pinned, "scripts/kafka/pom.xml pins <kafka.version>"
    image = services(compose)["kafka"]["image"]
    assert re.fullmatch(rf"apache/kafka:{re.escape(pinned.group(1))}@sha256:[0-9a-f]{{64}}", image), image


def test_every_image_is_pinned_by_digest(compose: dict[str, Any]) -> None:
    """Images pulled from a registry carry a digest; the project's own image is built from the Dockerfile."""
    for name, service in services(compose).items():
        if "build" not in service:
            assert "@sha256:" in service["image"], name


def test_kafka_is_configured_like_the_broker_script(compose: dict[str, Any]) -> None:
    """Each KAFKA_* setting that scripts/kafka.sh also sets to a literal value has the same value."""
    script = (ROOT / "scripts" / "kafka.sh").read_text()
    literal = {
        key: value
        for key, value in re.findall(r"^([a-z][a-z0-9.]*)=(.*)$", script, re.MULTILINE)
        if "$" not in value  # ports and paths differ on purpose between the two
    }
    env = environment(services(compose)["kafka"])
    compared = 0
    for name, value in env.items():
        if not name.startswith("KAFKA_"):
            continue
        key = name.removeprefix("KAFKA_").lower().replace("_", ".")
        if key in literal:
            assert value == literal[key], name
            compared += 1
    assert compared >= 10, "most broker settings are compared, not just a few"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"


def test_kafka_healthcheck_asks_the_broker_itself(compose: dict[str, Any]) -> None:
    test = " ".join(services(compose)["kafka"]["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test


def test_every_pseudonymizer_subcommand_used_exists(compose: dict[str, Any]) -> None:
    """`pseudonymizer <subcommand>` in compose commands and the Dockerfile's CMD names a real subcommand."""
    used = {m for s in services(compose).values() for m in SUBCOMMAND.findall(command_text(s))}
    used |= set(SUBCOMMAND.findall(dockerfile_cmd().replace('", "', " ")))
    assert {"worker", "keys", "generate"} <= used
    try:
        from pipeline.cli import SUBCOMMANDS
    except ImportError as exc:
        pytest.skip(f"pipeline.cli does not import yet, so its SUBCOMMANDS cannot be checked: {exc}")
    assert used <= set(SUBCOMMANDS), used - set(SUBCOMMANDS)


def test_every_pseudo_variable_is_a_setting(compose: dict[str, Any]) -> None:
    """PSEUDO_* names set in an environment, or interpolated anywhere in the file, are settings fields."""
    names = {n for s in services(compose).values() for n in environment(s) if n.startswith("PSEUDO_")}
    names |= {n for n in INTERPOLATED.findall(COMPOSE_FILE.read_text()) if n.startswith("PSEUDO_")}
    assert {"PSEUDO_BROKER", "PSEUDO_KEYS_FILE", "PSEUDO_POLICY", "PSEUDO_DATA_DIR"} <= names
    try:
        from config.settings import ENV_VARS
    except ImportError as exc:
        pytest.skip(f"config.settings does not import yet, so ENV_VARS cannot be checked: {exc}")
    assert names <= ENV_VARS, names - ENV_VARS


def test_worker_starts_after_a_healthy_broker_and_its_keys(compose: dict[str, Any]) -> None:
    depends = services(compose)["worker"]["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["keys"]["condition"] == "service_completed_successfully"


def test_keys_are_generated_once_privately_and_read_only_elsewhere(compose: dict[str, Any]) -> None:
    """The key job never overwrites a keyring, writes it 0600, and no other service can write to it."""
    all_services = services(compose)
    job = command_text(all_services["keys"])
    assert "umask 077" in job
    assert "-s /keys/keyring.json" in job
    assert "--force" not in job
    for name, service in all_services.items():
        for volume in service.get("volumes", []):
            if str(volume).startswith("keys:") and name != "keys":
                assert str(volume).endswith(":ro"), (name, volume)


def test_worker_reads_the_keyring_and_policy_where_they_are_mounted(compose: dict[str, Any]) -> None:
    env = environment(services(compose)["worker"])
    assert env["PSEUDO_BROKER"] == "kafka://kafka:9092"
    assert env["PSEUDO_KEYS_FILE"] == "/keys/keyring.json"
    assert env["PSEUDO_POLICY"] == "/app/config/policy.toml"
    assert (ROOT / "config" / "policy.toml").exists(), "the Dockerfile copies the repo to /app"
    assert env["PSEUDO_DATA_DIR"] == "/data"


def test_nothing_is_published_on_the_host(compose: dict[str, Any]) -> None:
    """No ports: the raw topic holds personal data and faust's web server can serve table contents."""
    for name, service in services(compose).items():
        assert "ports" not in service, name


def test_dockerfile_python_is_the_oldest_supported_one() -> None:
    image = re.search(r"^FROM\s+python:(\d+)\.(\d+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert image, "the Dockerfile builds FROM python:<major>.<minor>"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = re.search(r">=\s*(\d+)\.(\d+)", requires)
    assert floor, requires
    assert image.groups() == floor.groups()


def test_dockerfile_runs_as_an_unprivileged_user_and_starts_the_worker() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert users, "the Dockerfile switches user"
    assert users[-1] not in {"root", "0"}
    assert "ENTRYPOINT" not in DOCKERFILE.read_text()
    assert SUBCOMMAND.findall(dockerfile_cmd().replace('", "', " ")) == ["worker"]


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image() -> None:
    patterns = set((ROOT / ".dockerignore").read_text().split())
    for wanted in (".env", "**/*keyring*.json", "**/*.mmdb", ".git", ".venv", ".kafka"):
        assert wanted in patterns, wanted
