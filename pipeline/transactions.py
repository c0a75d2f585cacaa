"""Exactly-once delivery (``PSEUDO_PROCESSING_GUARANTEE=exactly_once``): a poll's outputs and offsets, one transaction.

With at-least-once (the default), the ingest commits a poll's input offsets once the broker has acknowledged every
output of it; a crash in between writes the poll's outputs again (the same ``event_id``). With exactly-once, each
poll's outputs (analytics or release rows, abuse events, quarantine envelopes, observations) and its input offsets
commit in one Kafka transaction (aiokafka's transactional producer, ``send_offsets_to_transaction``), and every
consumer reads ``read_committed``: a poll is either wholly visible, offsets included, or not at all, and a crash
or an aborted transaction replays it with nothing of its first attempt showing. The detector's alerts and its state
changelog likewise commit in one transaction of their own (pipeline/detector.py).

Fencing. Each producer's ``transactional_id`` is stable per worker (:func:`transactional_id`): a restarted worker
with the same id fences the old process (a zombie still running after its replacement started) and aborts whatever
transaction that one left open. aiokafka sends offsets with TxnOffsetCommit v0, which carries no consumer group
generation (KIP-447), so a zombie whose partitions moved to a *different* worker is not fenced by the broker; the
ingest settles its transactions before it gives partitions up (its rebalance listener), which closes that gap
except for a process stalled past its session timeout in the middle of a transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    IllegalOperation,
    InvalidProducerEpoch,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
)

from config.settings import Settings

if TYPE_CHECKING:
    from pipeline.ingest import PollOutputs, SentBatch

log = logging.getLogger("pseudonymizer.transactions")

# A producer that got one of these can never write again: another process with its transactional id took over,
# or it may not use the id. Aborting is impossible, retrying pointless: the worker stops.
FATAL = (ProducerFenced, InvalidProducerEpoch, TransactionalIdAuthorizationFailed, IllegalOperation)

WORKER_ID_FILE = "worker-id"


class TransactionAborted(RuntimeError):
    """A transaction did not commit and was aborted: none of its outputs or offsets are visible; redo its input."""


def worker_id(settings: Settings) -> str:
    """A name that stays the same across restarts of one worker: ``PSEUDO_GROUP_INSTANCE_ID`` when set (a StatefulSet
    pod's name), else an id kept in the worker's state folder (``PSEUDO_DATA_DIR``, a volume per worker), created
    once. Two live workers must not share it, as they must not share an instance id or a state folder."""
    if settings.group_instance_id is not None:
        return settings.group_instance_id
    path = Path(settings.data_dir) / WORKER_ID_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = uuid.uuid4().hex[:16]
        path.write_text(created + "\n", encoding="ascii")
        return created


def transactional_id(settings: Settings, role: str) -> str | None:
    """The transactional id of one of a worker's producers (``role``: ingest, detector, release), or None with
    at-least-once. The worker's consumer groups give each worker the same partitions back after a restart (static
    membership), so the id stands for a worker and its input partitions."""
    if settings.processing_guarantee != "exactly_once":
        return None
    return f"{settings.app_id}-{role}-{worker_id(settings)}"


class Transactions:
    """Runs batches of outputs as transactions on one transactional producer, one after another.

    Transactions are started in the order :meth:`run` is called (a producer has one open transaction at a time; the
    lock is first come, first served). After one fails, every later one fails too without writing anything, until
    :meth:`recover`: their input comes after the failed one's, and committing their offsets would skip it.
    """

    def __init__(self, producer: AIOKafkaProducer, group_id: str | None = None) -> None:
        """``group_id``: the consumer group whose offsets the transactions carry (None: no offsets)."""
        self._producer = producer
        self._group_id = group_id
        self._lock = asyncio.Lock()
        self._failed = False
        self.committed = 0
        self.aborted = 0

    def submit(self, outputs: PollOutputs, offsets: Mapping[Any, int]) -> asyncio.Task[list[SentBatch]]:
        """Start :meth:`run` now (its batches are built already); the task resolves once the transaction commits."""
        return asyncio.ensure_future(self.run(outputs, offsets))

    async def run(self, outputs: PollOutputs, offsets: Mapping[Any, int] | None = None) -> list[SentBatch]:
        """Send ``outputs`` and commit them with ``offsets`` (the next offsets to read) in one transaction.

        Raises :class:`TransactionAborted` (the transaction was aborted, or an earlier one failed), or one of
        :data:`FATAL` (this producer is fenced: the worker must stop).
        """
        async with self._lock:
            if self._failed:
                raise TransactionAborted("an earlier transaction failed")
            producer = self._producer
            await producer.begin_transaction()
            try:
                sent = await outputs.send_batches()
                await asyncio.gather(*(batch.delivered for batch in sent))
                if offsets:
                    assert self._group_id is not None
                    await producer.send_offsets_to_transaction(dict(offsets), self._group_id)
                await producer.commit_transaction()
            except FATAL:
                self._failed = True
                raise
            except BaseException as exc:
                self._failed = True
                await self._abort(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise TransactionAborted(type(exc).__name__) from exc
            self.committed += 1
            return sent

    async def _abort(self, cause: BaseException) -> None:
        self.aborted += 1
        # The cause's type only: an exception text could hold a record.
        log.warning("transaction aborted (%s)", type(cause).__name__)
        try:
            await self._producer.abort_transaction()
        except FATAL:
            raise
        except Exception as exc:  # the broker ends it itself when its timeout passes (transaction_timeout_ms)
            log.warning("transaction abort failed (%s)", type(exc).__name__)

    def recover(self) -> None:
        """The input after the last committed transaction will be read again: transactions may run again."""
        self._failed = False
