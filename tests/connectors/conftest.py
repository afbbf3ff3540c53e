"""The session's local processor servers, on the ports the session's vault forwards each
processor's requests to (`TestDatabase.provider_urls`), for every connector's tests and the
conformance suite."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from tests.support.asgi import serving
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.providers import vendor_specs
from tests.support.providers.adyen import LocalAdyen
from tests.support.providers.stripe import FIXTURES, StripeServer, fixtures


class ServedAdyen:
    """The session's local Adyen, on the port the session's vault forwards Adyen's requests to."""

    def __init__(self, server: LocalAdyen, port: int) -> None:
        self.server = server
        self._port = port
        self._stack = ExitStack()
        self._stack.enter_context(serving(server.app, name="local-adyen", port=port))

    @contextmanager
    def down(self) -> Iterator[None]:
        """Nothing listens on its port meanwhile: a connection is refused."""
        self._stack.close()
        try:
            yield
        finally:
            self._stack = ExitStack()
            self._stack.enter_context(serving(self.server.app, name="local-adyen", port=self._port))

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def adyen(test_database: TestDatabase) -> Iterator[ServedAdyen]:
    specs = vendor_specs() / "adyen"
    if not (specs / "CheckoutService-v71.json").is_file():
        pytest.skip(f"Adyen's published API descriptions are missing: {specs} (set BASTION_VENDOR_SPECS)")
    url = test_database.provider_urls["adyen"]
    port = urlsplit(url).port
    assert port is not None
    served = ServedAdyen(LocalAdyen(base_url=url), port)
    yield served
    served.close()


@dataclass
class LocalStripe:
    """The session's local Stripe, on the port the session's vault forwards Stripe's card data to."""

    server: StripeServer
    port: int
    _serving: ExitStack = field(default_factory=ExitStack)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._serving.enter_context(serving(self.server.app, name="local Stripe", port=self.port))

    def stop(self) -> None:
        self._serving.close()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Nothing listens on its port inside the block."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@pytest.fixture(scope="session")
def local_stripe(test_database: TestDatabase, vault: ApiProcess) -> Iterator[LocalStripe]:
    resources = fixtures()
    if resources is None:
        pytest.skip(f"Stripe's published fixtures are not at {FIXTURES} (set BASTION_VENDOR_SPECS to the vendor specs)")
    port = urlsplit(test_database.provider_urls["stripe"]).port
    assert port is not None
    local = LocalStripe(StripeServer(resources), port)
    local.start()
    yield local
    local.stop()
