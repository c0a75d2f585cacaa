"""Creates missing topics with their partition counts and per-purpose retention before the worker starts.

The broker runs with ``auto.create.topics.enable=false`` (as production brokers should): a typo in a
topic name must fail loudly, not create a stray topic that silently collects personal data.
"""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from config.settings import TopicSpec

log = logging.getLogger("pseudonymizer.topics")


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], *, client_id: str = "pseudonymizer-admin") -> list[str]:
    """Create the topics that do not exist yet; returns the names created. Existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                name=s.name,
                num_partitions=s.partitions,
                replication_factor=1 if "127.0.0.1" in bootstrap or "localhost" in bootstrap else -1,
                topic_configs={"retention.ms": str(s.retention_ms), "cleanup.policy": "delete"},
            )
            for s in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker process won the race: fine
            await admin.create_topics(new)
        for s in missing:
            log.info("topic %s created: %d partitions, retention %d ms", s.name, s.partitions, s.retention_ms)
        return [s.name for s in missing]
    finally:
        await admin.close()
