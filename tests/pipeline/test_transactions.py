"""PSEUDO_PROCESSING_GUARANTEE: the setting, the client options built from it, and the per-poll transactions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, ProducerFenced

from config.settings import Settings
from pipeline import kafka_clients
from pipeline.ingest import SentBatch
from pipeline.transactions import TransactionAborted, Transactions, transactional_id, worker_id
from transforms.errors import ConfigError


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"PSEUDO_DATA_DIR": str(tmp_path / "data"), **env})


def test_the_guarantee_is_at_least_once_unless_set(tmp_path: Path) -> None:
    """No variable: at_least_once, and nothing changes in the client options."""
    settings = _settings(tmp_path)
    assert settings.processing_guarantee == "at_least_once"
    assert kafka_clients.read_options(settings) == {}
    assert kafka_clients.faust_guarantee(settings) == {}
    assert transactional_id(settings, "ingest") is None


def test_an_unknown_guarantee_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PSEUDO_PROCESSING_GUARANTEE"):
        _settings(tmp_path, PSEUDO_PROCESSING_GUARANTEE="exactly-once")


def test_exactly_once_makes_consumers_read_committed_and_faust_transactional(tmp_path: Path) -> None:
    settings = _settings(tmp_path, PSEUDO_PROCESSING_GUARANTEE="exactly_once")
    assert kafka_clients.read_options(settings) == {"isolation_level": "read_committed"}
    assert kafka_clients.faust_guarantee(settings) == {"processing_guarantee": "exactly_once"}


def test_every_consumer_of_the_factory_gets_the_isolation_level(tmp_path: Path) -> None:
    """The one place: kafka_clients.consumer applies it (the ingest's, the release stage's, their readers)."""

    async def levels() -> tuple[str, str]:
        committed = kafka_clients.consumer(_settings(tmp_path, PSEUDO_PROCESSING_GUARANTEE="exactly_once"))
        uncommitted = kafka_clients.consumer(_settings(tmp_path))
        return committed._isolation_level, uncommitted._isolation_level

    assert asyncio.run(levels()) == ("read_committed", "read_uncommitted")


def test_a_batch_producer_is_transactional_only_with_an_id(tmp_path: Path) -> None:
    settings = _settings(tmp_path, PSEUDO_PROCESSING_GUARANTEE="exactly_once", PSEUDO_SESSION_TIMEOUT_S="12")

    async def managers() -> tuple[Any, Any]:
        transactional = kafka_clients.batch_producer(settings, "c", transactional_id="app-ingest-w0")
        plain = kafka_clients.batch_producer(settings, "c")
        return transactional._txn_manager, plain._txn_manager

    transactional, plain = asyncio.run(managers())
    assert transactional.transactional_id == "app-ingest-w0"
    assert transactional.transaction_timeout_ms == 12_000  # a poll's transaction: the session timeout at most
    assert plain is None or plain.transactional_id is None  # idempotent, not transactional


def test_the_transactional_id_names_the_app_the_role_and_the_instance(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, PSEUDO_PROCESSING_GUARANTEE="exactly_once", PSEUDO_APP_ID="pz", PSEUDO_GROUP_INSTANCE_ID="worker-3"
    )
    assert transactional_id(settings, "ingest") == "pz-ingest-worker-3"
    assert transactional_id(settings, "detector") == "pz-detector-worker-3"


def test_without_an_instance_id_the_worker_id_is_kept_in_the_state_folder(tmp_path: Path) -> None:
    """A restart with the same state folder gets the same id (and fences its zombie); another folder another id."""
    first = _settings(tmp_path / "a", PSEUDO_PROCESSING_GUARANTEE="exactly_once")
    again = _settings(tmp_path / "a", PSEUDO_PROCESSING_GUARANTEE="exactly_once")
    other = _settings(tmp_path / "b", PSEUDO_PROCESSING_GUARANTEE="exactly_once")
    assert worker_id(first) == worker_id(again) != worker_id(other)
    assert transactional_id(first, "ingest") == transactional_id(again, "ingest")


class FakeOutputs:
    """A poll's outputs: one batch, delivered or failing as told."""

    def __init__(self, failure: BaseException | None = None) -> None:
        self.failure = failure

    async def send_batches(self) -> list[SentBatch]:
        delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failure is None:
            delivered.set_result(None)
        else:
            delivered.set_exception(self.failure)
        return [SentBatch("out", 0, 1, delivered)]


class FakeProducer:
    def __init__(self, commit_failure: BaseException | None = None) -> None:
        self.calls: list[Any] = []
        self.commit_failure = commit_failure

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group_id: str) -> None:
        self.calls.append(("offsets", offsets, group_id))

    async def commit_transaction(self) -> None:
        if self.commit_failure is not None:
            raise self.commit_failure
        self.calls.append("commit")

    async def abort_transaction(self) -> None:
        self.calls.append("abort")


def _run(transactions: Transactions, outputs: Any, offsets: dict[Any, int] | None = None) -> Any:
    return asyncio.run(transactions.run(outputs, offsets))


def test_a_poll_commits_its_outputs_and_offsets_in_one_transaction() -> None:
    producer = FakeProducer()
    transactions = Transactions(producer, "app-ingest")  # type: ignore[arg-type]
    _run(transactions, FakeOutputs(), {"tp": 42})
    assert producer.calls == ["begin", ("offsets", {"tp": 42}, "app-ingest"), "commit"]
    assert transactions.committed == 1


def test_a_failed_send_aborts_and_later_transactions_fail_unwritten_until_recovered() -> None:
    """Committing a later poll's offsets would skip the failed one's input."""
    producer = FakeProducer()
    transactions = Transactions(producer, "app-ingest")  # type: ignore[arg-type]
    with pytest.raises(TransactionAborted):
        _run(transactions, FakeOutputs(KafkaTimeoutError()), {"tp": 1})
    assert producer.calls == ["begin", "abort"]  # no offsets, no commit
    with pytest.raises(TransactionAborted):
        _run(transactions, FakeOutputs(), {"tp": 2})
    assert producer.calls == ["begin", "abort"]  # nothing begun
    transactions.recover()
    _run(transactions, FakeOutputs(), {"tp": 1})
    assert producer.calls[-1] == "commit"


def test_a_fenced_producer_is_not_aborted_and_stops_the_worker() -> None:
    """Another process has this worker's transactional id: the error goes up as it is."""
    producer = FakeProducer(commit_failure=ProducerFenced())
    transactions = Transactions(producer, "app-ingest")  # type: ignore[arg-type]
    with pytest.raises(ProducerFenced):
        _run(transactions, FakeOutputs(), {"tp": 1})
    assert "abort" not in producer.calls


def test_transactions_without_offsets_send_none() -> None:
    """The detector's alerts and state: no consumer offsets of its own in the transaction."""
    producer = FakeProducer()
    _run(Transactions(producer), FakeOutputs())  # type: ignore[arg-type]
    assert producer.calls == ["begin", "commit"]


def test_submitted_polls_commit_in_the_order_they_were_submitted() -> None:
    producer = FakeProducer()
    transactions = Transactions(producer, "g")  # type: ignore[arg-type]

    async def three() -> None:
        tasks = [transactions.submit(FakeOutputs(), {"tp": n}) for n in (1, 2, 3)]  # type: ignore[arg-type]
        await asyncio.gather(*tasks)

    asyncio.run(three())
    assert [call[1]["tp"] for call in producer.calls if isinstance(call, tuple)] == [1, 2, 3]
