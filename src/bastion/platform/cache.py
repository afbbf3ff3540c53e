"""A bounded in-process memory with a time to live, for look-ups that many requests repeat."""

import time
from collections import OrderedDict
from typing import Generic, TypeVar

# A key look-up that found nothing is remembered this long: a flood of one bad key costs one
# database query per interval, and a key created meanwhile works at most this much later.
UNKNOWN_KEY_TTL_S = 5.0

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Remembers up to `entries_max` values for `ttl_s` seconds each; the oldest go first.
    With `ttl_s` 0 it remembers nothing."""

    def __init__(self, ttl_s: float, entries_max: int) -> None:
        self.ttl_s = ttl_s
        self.entries_max = entries_max
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K) -> V | None:
        cached = self._entries.get(key)
        if cached is None or cached[1] <= time.monotonic():
            return None
        return cached[0]

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0:
            return
        self._entries[key] = (value, time.monotonic() + self.ttl_s)
        self._entries.move_to_end(key)
        if len(self._entries) > self.entries_max:
            self._entries.popitem(last=False)
