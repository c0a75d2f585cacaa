"""docker-compose.yml and the Dockerfile stay consistent with the broker script, the CLI and the settings.

There is no Docker engine in CI, so these tests read the files: the Kafka image is the version that
scripts/kafka/pom.xml pins, the broker is configured like scripts/kafka.sh, every ``pseudonymizer``
subcommand exists, every ``PSEUDO_*`` variable is a setting, and the image's Python is the supported one.
"""

from __future__ import annotations

import importlib.util
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
    from pipeline.cli import SUBCOMMANDS

    assert used <= set(SUBCOMMANDS), used - set(SUBCOMMANDS)


def test_every_pseudo_variable_is_a_setting(compose: dict[str, Any]) -> None:
    """PSEUDO_* names set in an environment, or interpolated anywhere in the file, are settings fields."""
    names = {n for s in services(compose).values() for n in environment(s) if n.startswith("PSEUDO_")}
    names |= {n for n in INTERPOLATED.findall(COMPOSE_FILE.read_text()) if n.startswith("PSEUDO_")}
    assert {"PSEUDO_BROKER", "PSEUDO_KEYS_FILE", "PSEUDO_POLICY", "PSEUDO_DATA_DIR"} <= names
    from config.settings import ENV_VARS

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


# --- docker-compose.secure.yml: the secured broker as an override of the file above ------------------------

SECURE_FILE = ROOT / "docker-compose.secure.yml"
# KAFKA_* variables of the apache/kafka image that are not broker properties.
IMAGE_VARIABLES = {
    "KAFKA_OPTS",
    "KAFKA_HEAP_OPTS",
    "KAFKA_SSL_KEYSTORE_FILENAME",
    "KAFKA_SSL_KEYSTORE_CREDENTIALS",
    "KAFKA_SSL_KEY_CREDENTIALS",
}
# What scripts/kafka.sh sets in secure mode that the compose broker leaves out on purpose.
NOT_IN_COMPOSE = {
    # OAUTHBEARER there validates unsigned tokens: a test stand-in for an identity provider.
    "listener.name.sasl_ssl.oauthbearer.sasl.jaas.config",
}


@pytest.fixture(scope="module")
def secure() -> dict[str, Any]:
    loaded = yaml.safe_load(SECURE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def broker_property(variable: str) -> str:
    """The property the apache/kafka image writes for a KAFKA_* variable: _ is '.', __ is '_', ___ is '-'."""
    raw = variable.removeprefix("KAFKA_").lower()
    return raw.replace("___", "\0").replace("__", "\1").replace("_", ".").replace("\0", "-").replace("\1", "_")


def compose_value(value: str) -> str:
    """A value as the container sees it: compose turns $$ into $."""
    return value.replace("$$", "$")


def secure_script_properties() -> dict[str, str]:
    """The properties scripts/kafka.sh writes for KAFKA_SECURE=1: its heredocs and the lines its sed rewrites.

    Values holding a shell variable (ports, paths, passwords) are left out; escaped dollars are literal.
    """
    script = (ROOT / "scripts" / "kafka.sh").read_text()
    start = script.index('if [ "$secure" = 1 ]')
    # Up to the cluster mode's functions: they write a cluster node's properties, which are not the secure broker's.
    end = script.find("# --- cluster mode", start)
    secure_part = script[start : end if end >= 0 else len(script)]
    properties = {}
    for key, value in re.findall(r"^([a-z][a-z0-9._-]*)=(.*)$", secure_part, re.MULTILINE):
        properties[key] = value
    for key, value in re.findall(r"s#\^([a-z.]+)=\.\*#\1=([^#]*)#", secure_part):
        properties[key] = value
    return {key: value.replace("\\$", "$") for key, value in properties.items() if "$" not in value.replace("\\$", "")}


def kafka_tls_principals() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("kafka_tls", ROOT / "scripts" / "kafka_tls.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.PRINCIPALS)


def handed_out(secure: dict[str, Any]) -> dict[str, set[str]]:
    """Volume -> the files the tls job gives it (read from its `give OWNER FOLDER FILE...` lines)."""
    job = services(secure)["tls"]
    folder_volume = {
        str(v).split(":")[1]: str(v).split(":")[0] for v in job["volumes"] if str(v).split(":")[1].startswith("/tls/")
    }
    text = command_text(job).replace("\\\n", " ")
    given: dict[str, set[str]] = {}
    for folder, files in re.findall(r"^\s*give \S+ (/tls/\w+) ([^\n]+)$", text, re.MULTILINE):
        given.setdefault(folder_volume[folder], set()).update(files.split())
    return given


def mounted_files(secure: dict[str, Any], service: dict[str, Any]) -> dict[str, str]:
    """Paths a service can read from the tls job's volumes -> the volume they come from."""
    given = handed_out(secure)
    paths = {}
    for volume in service.get("volumes", []):
        source, target, *mode = str(volume).split(":")
        if source in given:
            assert mode == ["ro"], (source, target)
            paths.update({f"{target}/{name}": source for name in given[source]})
    return paths


def test_the_secure_file_adds_certificates_topics_and_acls(secure: dict[str, Any]) -> None:
    assert set(services(secure)) == {"tls", "kafka", "topics", "acls", "worker", "generator"}
    assert set(services(secure)) - {"tls", "topics", "acls"} <= set(services(yaml.safe_load(COMPOSE_FILE.read_text())))


def test_the_broker_is_configured_like_the_secure_broker_script(secure: dict[str, Any]) -> None:
    """Every literal property scripts/kafka.sh writes in secure mode is set the same way here (bar NOT_IN_COMPOSE)."""
    script = secure_script_properties()
    env = {
        broker_property(name): compose_value(value)
        for name, value in environment(services(secure)["kafka"]).items()
        if name.startswith("KAFKA_") and name not in IMAGE_VARIABLES
    }
    mechanisms = "sasl.enabled.mechanisms"
    assert set(env[mechanisms].split(",")) == {"SCRAM-SHA-512", "PLAIN"}
    assert set(env[mechanisms].split(",")) <= set(script[mechanisms].split(","))
    compared = {key for key in script if key not in NOT_IN_COMPOSE | {mechanisms}}
    assert compared - set(env) == set(), "set in scripts/kafka.sh's secure mode but not here"
    assert {key: env[key] for key in compared} == {key: script[key] for key in compared}
    for wanted in (
        "authorizer.class.name",
        "allow.everyone.if.no.acl.found",
        "super.users",
        "ssl.principal.mapping.rules",
        "listener.name.ssl.ssl.client.auth",
        "listener.name.controller.ssl.client.auth",
        "inter.broker.listener.name",
        "listener.security.protocol.map",
    ):
        assert wanted in compared, f"scripts/kafka.sh no longer sets {wanted}: compare it some other way"
    assert env["allow.everyone.if.no.acl.found"] == "false"
    assert env["super.users"] == "User:broker;User:admin"


def test_the_broker_listeners_are_secured_and_its_certificate_names_its_host(secure: dict[str, Any]) -> None:
    env = environment(services(secure)["kafka"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols["CONTROLLER"] == "SSL"
    assert protocols[env["KAFKA_INTER_BROKER_LISTENER_NAME"]] == "SSL"
    advertised = dict(re.findall(r"([A-Z_]+)://([^:,]+):\d+", env["KAFKA_ADVERTISED_LISTENERS"]))
    # Plaintext only on the broker container's loopback, for the health check of docker-compose.yml.
    assert advertised.pop("PLAINTEXT") == "127.0.0.1"
    assert {protocols[name] for name in advertised} == {"SASL_SSL", "SSL"}
    sans = re.findall(r"--san (\S+)", command_text(services(secure)["tls"]))
    assert set(advertised.values()) <= set(sans) | {"localhost", "127.0.0.1"}
    assert "localhost:9092" in " ".join(
        services(yaml.safe_load(COMPOSE_FILE.read_text()))["kafka"]["healthcheck"]["test"]
    )


def test_broker_secrets_are_references_to_files_it_is_given(secure: dict[str, Any]) -> None:
    """No password is written into the file: each is ${dir:folder:file}, and that file is in the broker's volume."""
    kafka = services(secure)["kafka"]
    files = mounted_files(secure, kafka)
    env = environment(kafka)
    references = re.findall(r"\$\$\{dir:([^:}]+):([^}]+)\}", SECURE_FILE.read_text())
    assert references
    for folder, name in references:
        assert folder == env["KAFKA_CONFIG_PROVIDERS_DIR_PARAM_ALLOWED__PATHS"]
        assert f"{folder}/{name}" in files, name
    for name, value in env.items():
        if "PASSWORD" in name:
            assert compose_value(value).startswith("${dir:"), name
    assert env["KAFKA_SSL_KEYSTORE_LOCATION"] in files
    assert env["KAFKA_SSL_TRUSTSTORE_LOCATION"] in files
    for name in ("KAFKA_SSL_KEYSTORE_FILENAME", "KAFKA_SSL_KEYSTORE_CREDENTIALS", "KAFKA_SSL_KEY_CREDENTIALS"):
        assert f"/etc/kafka/secrets/{env[name]}" in files, name


def test_every_principal_of_the_certificate_script_can_log_in_with_plain_and_scram(secure: dict[str, Any]) -> None:
    principals = set(kafka_tls_principals())
    jaas = environment(services(secure)["kafka"])["KAFKA_LISTENER_NAME_SASL__SSL_PLAIN_SASL_JAAS_CONFIG"]
    assert set(re.findall(r"user_(\w+)=", jaas)) == principals
    broker_files = mounted_files(secure, services(secure)["kafka"])
    assert {f"/etc/kafka/secrets/{p}.password" for p in principals} <= set(broker_files)
    assert "--add-scram" in command_text(services(secure)["kafka"])


def test_each_client_gets_its_own_credentials_and_no_one_elses(secure: dict[str, Any]) -> None:
    """A SASL client's volume holds its password and the CA; a certificate client's its key pair and the CA."""
    principals = set(kafka_tls_principals())
    for name in ("topics", "acls", "worker", "generator"):
        service = services(secure)[name]
        env = environment(service)
        files = mounted_files(secure, service)
        for variable, path in env.items():
            if variable.endswith("_FILE"):
                assert path in files, (name, variable, path)
        user = env.get("PSEUDO_KAFKA_SASL_USERNAME")
        if user is None:  # mutual TLS
            user = Path(env["PSEUDO_KAFKA_SSL_CERT_FILE"]).stem
        assert user in principals, (name, user)
        others = {Path(path).stem for path in files} - {user, "ca"}
        assert others == set(), (name, others)


def test_clients_connect_with_valid_settings_to_the_listener_of_their_protocol(
    secure: dict[str, Any], tmp_path: Path
) -> None:
    """Each client's PSEUDO_* environment passes the settings model (files replaced by stand-ins)."""
    from config.settings import ENV_VARS, KAFKA_PREFIX, KafkaConnection, Settings

    known = ENV_VARS | {KAFKA_PREFIX + field.upper() for field in KafkaConnection.model_fields}
    kafka_env = environment(services(secure)["kafka"])
    ports = {
        protocol: port
        for name, port in re.findall(r"([A-Z_]+)://[^:,]*:(\d+)", kafka_env["KAFKA_ADVERTISED_LISTENERS"])
        for protocol in [dict(i.split(":") for i in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))[name]]
    }
    main = services(yaml.safe_load(COMPOSE_FILE.read_text()))
    stand_in = tmp_path / "stand-in"
    stand_in.write_text("x")
    for name in ("topics", "acls", "worker", "generator"):
        env = {**environment(main.get(name, {})), **environment(services(secure)[name])}
        pseudo = {k: v for k, v in env.items() if k.startswith("PSEUDO_") and not v.startswith("${")}
        assert set(pseudo) <= known, set(pseudo) - known
        pseudo = {k: str(stand_in) if k.endswith("_FILE") else v for k, v in pseudo.items()}
        settings = Settings.from_env(pseudo)
        broker = re.search(r"--broker\s+kafka://\S+:(\d+)", command_text(services(secure)[name]))
        port = broker.group(1) if broker else settings.bootstrap.rsplit(":", 1)[1]
        assert ports[settings.kafka.security_protocol] == port, name


def test_acls_are_applied_for_every_audience_as_admin(secure: dict[str, Any]) -> None:
    acls = services(secure)["acls"]
    command = command_text(acls)
    assert command.startswith("pseudonymizer acls ")
    assert command.endswith(" --apply")
    given = dict(re.findall(r"--principal-(\w+) User:(\w+)", command))
    assert set(given.values()) <= set(kafka_tls_principals())
    assert Path(environment(acls)["PSEUDO_KAFKA_SSL_CERT_FILE"]).stem == "admin"
    assert acls["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services(secure)["worker"]["depends_on"]["acls"]["condition"] == "service_completed_successfully"
    from pipeline.acls import Audience

    assert set(given) == {audience.value for audience in Audience}


def test_the_secure_file_uses_real_subcommands_and_publishes_nothing(secure: dict[str, Any]) -> None:
    used = {m for s in services(secure).values() for m in SUBCOMMAND.findall(command_text(s))}
    assert {"topics", "acls", "generate"} <= used
    from pipeline.cli import SUBCOMMANDS

    assert used <= set(SUBCOMMANDS), used - set(SUBCOMMANDS)
    for name, service in services(secure).items():
        assert "ports" not in service, name
        assert service.get("image", "pseudonymizer:local") == "pseudonymizer:local", name
        assert "ALL" in service.get("cap_drop", ["ALL"]), name
