"""Token buckets per key (an API key, a publishable key, a client address), in process. Each
node limits on its own, so a cluster of N nodes admits up to N times the rate; the limit
protects each node and the database."""

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from bastion.kernel.errors import RateLimited

_TRACKED_KEYS_MAX = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_s: float


class RateLimiter:
    def __init__(self, rate_per_s: int, burst: int, *, per: str = "API key") -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.per = per
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def check(self, key: str) -> None:
        moment = time.monotonic()
        bucket = self._buckets.pop(key, None) or _Bucket(tokens=float(self.burst), updated_s=moment)
        bucket.tokens = min(float(self.burst), bucket.tokens + (moment - bucket.updated_s) * self.rate_per_s)
        bucket.updated_s = moment
        self._buckets[key] = bucket
        if len(self._buckets) > _TRACKED_KEYS_MAX:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1.0:
            wait_s = max(1, math.ceil((1.0 - bucket.tokens) / self.rate_per_s))
            raise RateLimited(f"Too many requests: at most {self.rate_per_s} per second per {self.per}", retry_after_s=wait_s)
        bucket.tokens -= 1.0
