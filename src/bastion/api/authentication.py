"""API key look-ups with a short in-process memory.

Every request authenticates; remembering a successful look-up for `ttl_s` saves a
transaction per request. The price: a key's revocation or new scopes reach each API
process up to `ttl_s` later. Failed look-ups are never remembered.
"""

from bastion.merchants import Principal, authenticate, secret_digest
from bastion.platform.cache import TtlCache
from bastion.platform.crypto import KeyedHasher
from bastion.platform.db import Database

ENTRIES_MAX = 10_000


class Authenticator:
    def __init__(self, database: Database, hasher: KeyedHasher, ttl_s: int) -> None:
        self.database = database
        self.hasher = hasher
        self._principals: TtlCache[str, Principal] = TtlCache(ttl_s, ENTRIES_MAX)

    async def principal(self, secret: str) -> Principal:
        digest = secret_digest(self.hasher, secret)
        if (cached := self._principals.get(digest)) is not None:
            return cached
        async with self.database.transaction() as connection:
            principal = await authenticate(connection, digest)
        self._principals.put(digest, principal)
        return principal
