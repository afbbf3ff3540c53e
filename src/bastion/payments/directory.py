"""Which connector an attempt goes through: the sandbox acquirer's for an attempt with no
connector account, or one built for the merchant's account from its opened credentials. A
built connector is kept a while, so that an account's credentials are opened once per process
and minute, not once per request (they cannot change: ADR 26)."""

from collections.abc import Callable, Mapping

from bastion import connectors
from bastion.kernel.errors import ResourceMissing
from bastion.payments.connectors import Connector
from bastion.platform.cache import TtlCache
from bastion.platform.db import Actor, Database, Tenant

# How long a built connector is kept, and how many at most (a merchant has at most 32
# accounts a mode; this bounds the memory of a process serving many merchants).
CONNECTOR_TTL_S = 300.0
CONNECTORS_CACHED_MAX = 1_024

Builder = Callable[[connectors.OpenedAccount], Connector]


class ConnectorDirectory:
    def __init__(
        self, database: Database, sealer: connectors.CredentialsSealer, sandbox: Connector, builders: Mapping[str, Builder]
    ) -> None:
        self._database = database
        self._sealer = sealer
        self.sandbox = sandbox
        self._builders = builders
        self._built: TtlCache[str, Connector] = TtlCache(CONNECTOR_TTL_S, CONNECTORS_CACHED_MAX)

    @property
    def available(self) -> frozenset[str]:
        """The connectors this install can reach (the feature matrix's `available`)."""
        return frozenset({self.sandbox.name, *self._builders})

    async def of(self, tenant: Tenant, account_id: str | None) -> Connector:
        """The connector of an attempt through `account_id` (None: the sandbox acquirer)."""
        if account_id is None:
            return self.sandbox
        built = self._built.get(account_id)
        if built is not None:
            return built
        async with self._database.unit_of_work(tenant, Actor(id="connectors")) as uow:
            account = await connectors.open_account(uow, self._sealer, account_id)
        builder = self._builders.get(account.connector)
        if builder is None:
            raise ResourceMissing(f"The {account.connector} connector is not available on this install.", param="connector")
        built = builder(account)
        self._built.put(account_id, built)
        return built

    async def of_notification(self, name: str, account_id: str) -> Connector:
        """The connector that verifies a notification sent for `account_id` at `name`'s URL; a
        404 for an account that is not one of `name`'s."""
        async with self._database.transaction() as connection:
            owner = await connectors.account_owner(connection, account_id)
        if owner is None or owner[1] != name:
            raise ResourceMissing(f"No such {name} connector account: '{account_id}'", param="account")
        return await self.of(owner[0], account_id)
