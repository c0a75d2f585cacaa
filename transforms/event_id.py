"""Event ids: one deterministic, opaque id per output record, so that consumers can de-duplicate.

Delivery is at-least-once: a crash or a rebalance replays input, and the replay writes the same records again.
Content cannot tell a duplicate from a genuine twin (two identical requests in one second are common), so every
analytics, abuse, quarantine and aggregate record carries ``event_id``: the same on every replay of the same
input, different for every other record.

Why it looks like this:

* **Position, not content.** A record's id is HMAC-SHA256 of where its input came from (source topic,
  partition, offset), which output it is (the :class:`~pipeline.routing.Output` name, stable across
  deployments where topic names differ), and its index among that input's outputs of that kind (one line can
  match several abuse rules). A replay re-reads the same positions, so it writes the same ids; a genuine twin sits
  at another offset, so its id differs.
* **Keyed, so it links nothing.** The position is not secret, but an unkeyed hash of it would let anyone who sees
  two outputs of one input (an insider with analytics and abuse) join them by recomputing. Under the keyring's
  event-id key, the analytics id and the abuse id of one input are unrelated without the key, and no id says
  anything about the address. The key never rotates: a replay after the pseudonym keys moved on gives the same
  ids (``transforms.keyring`` says where the key comes from).
* **128 bits in hex** (32 characters), as the pseudonyms' digests: collisions are out of reach for any log
  volume, and hex is encoded in C.
* **Domain-separated inputs**: records, aggregates and alerts hash different tagged JSON arrays, so no input of
  one kind can produce another kind's id.

Aggregates have no single input: their id is a keyed hash of what they are (the release partition that counted
them, the window and the dimension cell), so a window released twice after a crash carries the same ids.
Detector alerts have none either: :meth:`EventIds.alert` hashes the rule, the subject and the alert's time.

Examples (a fixed test key; ``tests/transforms/test_event_id.py`` checks them)::

    >>> ids = EventIds(bytes(range(32)))
    >>> ids.record("analytics", "logs.raw", 1, 7, 0)
    '6af94eceed8c9b67abd74a077f3b9096'
    >>> ids.record("abuse", "logs.raw", 1, 7, 0)
    '36ac5f59c3ceb281842c47795e9af81c'
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

import orjson

EVENT_ID_KEY_BYTES: Final = 32
EVENT_ID_DIGEST_BYTES: Final = 16  # 128 bits: 32 hex characters
_DOMAIN: Final = "pseudonymizer/v1/event-id"


class EventIds:
    """Computes event ids under one key. Build once (from ``Keyring.event_id_key_material()``); call per record.

    The key is held privately and never printed: ``repr`` shows the class only.
    """

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        if len(key) != EVENT_ID_KEY_BYTES:
            raise ValueError(f"an event-id key must be {EVENT_ID_KEY_BYTES} bytes")
        # A pre-keyed HMAC copied per id: ~3x cheaper than keying a new one (as transforms.pseudonymize does).
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "EventIds(key=**********)"

    def _digest(self, parts: list[Any]) -> str:
        mac = self._keyed.copy()
        mac.update(orjson.dumps(parts))
        return mac.digest()[:EVENT_ID_DIGEST_BYTES].hex()

    def record(self, output: str, topic: str, partition: int, offset: int, index: int) -> str:
        """The id of the ``index``-th ``output`` record made from the input at (topic, partition, offset)."""
        return self._digest([_DOMAIN, "record", output, topic, partition, offset, index])

    def aggregate(self, scope: int, start: str, end: str, dimensions: Mapping[str, Any]) -> str:
        """The id of one aggregate row: the release partition (``scope``) that counted it, its window and cell.

        Dimension names are sorted, so the id does not depend on the order a policy lists them in.
        """
        cell = sorted(dimensions.items())
        return self._digest([_DOMAIN, "aggregate", scope, start, end, cell])

    def alert(self, rule: str, subject: str, time: str) -> str:
        """The id of a detector alert: its rule, its subject (a security pseudonym) and its time as written.

        For the detector (pipeline/app.py, the file mode): the same alert raised again after a replay carries the
        same id, so consumers de-duplicate alerts like every other record.
        """
        return self._digest([_DOMAIN, "alert", rule, subject, time])
