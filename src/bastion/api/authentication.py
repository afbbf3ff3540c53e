"""API key look-ups with a short in-process memory.

Every request authenticates; remembering a successful look-up for `ttl_s` saves a
transaction per request. The price: a key's revocation or new scopes reach each API
process up to `ttl_s` later. A failed look-up is remembered for `UNKNOWN_KEY_TTL_S`, so that
a client repeating a bad key does not cost a query each time.
"""

from starlette.datastructures import Headers

from bastion.kernel.errors import AuthenticationFailed
from bastion.merchants import Principal, authenticate, secret_digest
from bastion.platform.cache import UNKNOWN_KEY_TTL_S, TtlCache
from bastion.platform.crypto import KeyedHasher
from bastion.platform.db import Database
from bastion.platform.http.credentials import bearer_token

ENTRIES_MAX = 10_000


class Authenticator:
    def __init__(self, database: Database, hasher: KeyedHasher, ttl_s: int) -> None:
        self.database = database
        self.hasher = hasher
        self._principals: TtlCache[str, Principal] = TtlCache(ttl_s, ENTRIES_MAX)
        self._unknown: TtlCache[str, str] = TtlCache(UNKNOWN_KEY_TTL_S, ENTRIES_MAX)

    async def check_headers(self, headers: Headers) -> None:
        """The edge's check of a request with a large body, before it is read: a valid secret
        key as `Authorization: Bearer` (its scopes are the route's to check)."""
        secret = bearer_token(headers.get("authorization"))
        if secret is None:
            raise AuthenticationFailed("No API key provided: send `Authorization: Bearer sk_test_...`")
        await self.principal(secret)

    async def principal(self, secret: str) -> Principal:
        digest = secret_digest(self.hasher, secret)
        if (cached := self._principals.get(digest)) is not None:
            return cached
        if (refusal := self._unknown.get(digest)) is not None:
            raise AuthenticationFailed(refusal)
        try:
            async with self.database.transaction() as connection:
                principal = await authenticate(connection, digest)
        except AuthenticationFailed as error:
            self._unknown.put(digest, str(error))
            raise
        self._principals.put(digest, principal)
        return principal
