"""API key look-ups with a short in-process memory.

Every request authenticates; remembering a successful look-up for `ttl_s` saves a
transaction per request. The price: a key's revocation or new scopes reach each API
process up to `ttl_s` later. Failed look-ups are never remembered.
"""

import time
from collections import OrderedDict

from bastion.merchants import Principal, authenticate, secret_digest
from bastion.platform.crypto import KeyedHasher
from bastion.platform.db import Database

ENTRIES_MAX = 10_000


class Authenticator:
    def __init__(self, database: Database, hasher: KeyedHasher, ttl_s: int) -> None:
        self.database = database
        self.hasher = hasher
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def principal(self, secret: str) -> Principal:
        digest = secret_digest(self.hasher, secret)
        cached = self._entries.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self.database.transaction() as connection:
            principal = await authenticate(connection, digest)
        if self.ttl_s > 0:
            self._entries[digest] = (principal, time.monotonic() + self.ttl_s)
            self._entries.move_to_end(digest)
            if len(self._entries) > ENTRIES_MAX:
                self._entries.popitem(last=False)
        return principal
