"""``pseudonymizer acls``: the exact Kafka ACLs each principal needs, printed, and applied through the Admin API.

On a broker with an authorizer and ``allow.everyone.if.no.acl.found=false``, a principal may do only what an ACL
grants. This module says what that is for each audience of the pipeline, from the same settings and the same table
of outputs (``pipeline.routing.OUTPUTS``) the worker uses, so a new output or a renamed topic changes the ACLs too:

============  ======================================================================================================
audience      may
============  ======================================================================================================
shipper       write (and describe) the raw input topic; nothing else, not even read it back
worker        read the raw input; write each output; read, write and create its internal topics (``<app id>-*``:
              observations, release rows, release progress, the detector's changelog, faust's leader topic); use
              its consumer groups (``<app id>``, ``<app id>-*``). It cannot read an output back. It creates the
              input and output topics only with ``--allow-create`` (otherwise an administrator runs
              ``pseudonymizer topics create`` first)
analyst       read the analytics and aggregates topics, with consumer groups named ``analyst-*``
security      read the abuse topic (groups ``security-*``); write the audit topic (``reveal``, ``lookup``)
operator      read the quarantine topic (groups ``operator-*``); write the audit topic (``quarantine decrypt``,
              ``lookup``)
auditor       read the audit topic (``audit verify --from-topic``; groups ``auditor-*``)
============  ======================================================================================================

``pseudonymizer topics create`` (as an administrator) creates the audit topic with the others.

The internal topics carry pseudonyms only, but they hold every record's quasi-identifiers before the k-anonymous
release, so no audience other than the worker reads them.

Kafka's ``AclCommand`` is not in the jars the project's broker script resolves, and aiokafka's admin client has no
ACL call, so :func:`apply` sends CreateAcls requests itself (see :func:`_create_acls`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, for_code
from aiokafka.protocol.admin import CreateAclsRequest

from config.settings import Settings
from pipeline import kafka_clients
from pipeline.routing import OUTPUTS
from transforms.errors import ConfigError

__all__ = ["Acl", "Audience", "Operation", "PatternType", "ResourceType", "apply", "format_table", "required_acls"]


class Audience(StrEnum):
    SHIPPER = "shipper"
    WORKER = "worker"
    ANALYST = "analyst"
    SECURITY = "security"
    OPERATOR = "operator"
    AUDITOR = "auditor"


# Kafka's wire codes (org.apache.kafka.common.acl / resource): the protocol carries numbers, not names.
class ResourceType(IntEnum):
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class PatternType(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10


ALLOW = 3  # AclPermissionType.ALLOW: every ACL here allows; what is not allowed is denied by the authorizer
ANY_HOST = "*"
CLUSTER = "kafka-cluster"  # the one name the CLUSTER resource has


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    principal: str
    resource: ResourceType
    pattern: PatternType
    name: str
    operation: Operation


def principal_name(text: str) -> str:
    """``User:<name>`` as Kafka writes principals; a bare name gets the ``User:`` prefix."""
    text = text.strip()
    if not text:
        raise ConfigError("acls: a principal must not be empty")
    return text if ":" in text else f"User:{text}"


def group_prefix(audience: Audience) -> str:
    """Readers' consumer groups are named ``<audience>-...`` (``analyst-dashboard``): one prefixed ACL covers them."""
    return f"{audience.value}-"


def required_acls(settings: Settings, principals: Mapping[Audience, str], *, allow_create: bool = False) -> list[Acl]:
    """Every ACL the given principals need under these settings, sorted, without duplicates."""
    acls: set[Acl] = set()

    def grant(audience: Audience, resource: ResourceType, pattern: PatternType, name: str, *ops: Operation) -> None:
        if audience in principals:
            principal = principal_name(principals[audience])
            acls.update(Acl(principal, resource, pattern, name, op) for op in ops)

    topic, group, literal, prefixed = ResourceType.TOPIC, ResourceType.GROUP, PatternType.LITERAL, PatternType.PREFIXED
    read, write, describe, create = Operation.READ, Operation.WRITE, Operation.DESCRIBE, Operation.CREATE
    internal = f"{settings.app_id}-"

    grant(Audience.SHIPPER, topic, literal, settings.input_topic, write, describe)

    grant(Audience.WORKER, topic, literal, settings.input_topic, read, describe)
    # faust declares its changelog and leader topics at every start, and the broker answers CreateTopics for a
    # topic that exists with an authorization error, not "exists", when CREATE is not granted.
    grant(Audience.WORKER, topic, prefixed, internal, read, write, describe, create)
    grant(Audience.WORKER, group, literal, settings.app_id, read)  # faust's group
    grant(Audience.WORKER, group, prefixed, internal, read)  # the ingest's and the release stage's groups
    external = [settings.input_topic]
    for spec in OUTPUTS.values():
        name = spec.topic(settings)
        if spec.reader is not None:  # read by an audience: the worker only writes it
            grant(Audience.WORKER, topic, literal, name, write, describe)
            external.append(name)
        if spec.reader is not None:
            reader = Audience(spec.reader)
            grant(reader, topic, literal, name, read, describe)
            grant(reader, group, prefixed, group_prefix(reader), read)
    # Every reveal, quarantine decrypt and look-up is audited to this topic before it shows anything (pipeline/audit.py)
    for tool_user in (Audience.SECURITY, Audience.OPERATOR):
        grant(tool_user, topic, literal, settings.audit_topic, write, describe)
    grant(Audience.AUDITOR, topic, literal, settings.audit_topic, read, describe)
    grant(Audience.AUDITOR, group, prefixed, group_prefix(Audience.AUDITOR), read)
    # A topic of another audience under the worker's prefix would fall under its PREFIXED grant: read, write, create.
    others = [*external, settings.audit_topic]
    if clashing := sorted(name for name in others if name.startswith(internal)):
        raise ConfigError(
            f"acls: topic(s) {', '.join(clashing)} start with the worker's internal prefix {internal!r} "
            "(PSEUDO_APP_ID): its grant on its internal topics would cover them too; rename them or the app id"
        )
    if allow_create:
        for name in external:
            grant(Audience.WORKER, topic, literal, name, create)
        # Creating a topic reads the cluster's default.replication.factor (pipeline/topics.py).
        grant(Audience.WORKER, ResourceType.CLUSTER, literal, CLUSTER, Operation.DESCRIBE_CONFIGS)
    return sorted(acls)


def format_table(acls: Iterable[Acl]) -> str:
    """One ACL per line, in the words of Kafka's own ``kafka-acls --list``."""
    rows = [("PRINCIPAL", "PERMISSION", "OPERATION", "RESOURCE", "PATTERN", "NAME")]
    rows += [(a.principal, "ALLOW", a.operation.name, a.resource.name, a.pattern.name, a.name) for a in acls]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


async def apply(settings: Settings, acls: Iterable[Acl]) -> int:
    """Create the ACLs on the broker (creating one that exists is a no-op for Kafka); returns how many were sent.

    Runs with the connection the settings name, which must be allowed to ALTER the cluster (a super user).
    Raises :class:`ConfigError` naming each refused ACL and the broker's error.
    """
    admin = kafka_clients.admin(settings, client_id="pseudonymizer-acls")
    try:
        await admin.start()
    except KafkaConnectionError:
        raise ConfigError(
            f"cannot reach a Kafka broker at {settings.bootstrap} (PSEUDO_BROKER or --broker), or it refused the "
            "connection settings (PSEUDO_KAFKA_*: the broker's answer is logged above)"
        ) from None
    sent = 0
    refused = []
    try:
        for acl in acls:
            code, message = await _create_acls(admin, acl)
            sent += 1
            if code:
                refused.append(
                    f"{acl.principal} {acl.operation.name} {acl.resource.name}:{acl.name} "
                    f"({for_code(code).__name__}: {message or 'no detail'})"
                )
    finally:
        await admin.close()
    if refused:
        raise ConfigError(f"the broker refused ACL(s): {'; '.join(refused)}")
    return sent


async def _create_acls(admin: AIOKafkaAdminClient, acl: Acl) -> tuple[int, str | None]:
    # aiokafka 0.14 has CreateAcls request classes (versions 0-1; Kafka 4 still serves 1) but no public admin call.
    # AIOKafkaAdminClient._send_request is its own internal helper that sends a request to any broker and negotiates
    # the version (ApiVersions). tests/integration/test_secured_broker.py applies ACLs through this function and
    # fails if that helper changes.
    request = CreateAclsRequest(
        resource_type=int(acl.resource),
        resource_name=acl.name,
        resource_pattern_type_filter=int(acl.pattern),
        principal=acl.principal,
        host=ANY_HOST,
        operation=int(acl.operation),
        permission_type=ALLOW,
    )
    response = await admin._send_request(request)
    ((code, message),) = response.creation_responses
    return int(code), message
