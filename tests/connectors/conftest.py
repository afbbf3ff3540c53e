"""The session's local processor servers, on the ports the session's vault forwards each
processor's requests to (`TestDatabase.provider_urls`), for every connector's tests and the
conformance suite."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import pytest

from tests.support.asgi import serving
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.providers import vendor_specs
from tests.support.providers.adyen import LocalAdyen
from tests.support.providers.braintree import BraintreeGateway
from tests.support.providers.stripe import FIXTURES, StripeServer, fixtures

P = TypeVar("P")


@dataclass
class Served(Generic[P]):
    """A processor's local server, on the port the session's vault forwards that processor's
    requests to; `stopped()` closes the port a while (a connection is refused)."""

    processor: P
    app: Any
    port: int
    name: str
    _serving: ExitStack = field(default_factory=ExitStack)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._serving.enter_context(serving(self.app, name=self.name, port=self.port))

    def stop(self) -> None:
        self._serving.close()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


def _port(test_database: TestDatabase, connector: str) -> int:
    port = urlsplit(test_database.provider_urls[connector]).port
    assert port is not None
    return port


class ServedAdyen(Served[LocalAdyen]):
    @property
    def server(self) -> LocalAdyen:
        return self.processor


@pytest.fixture(scope="session")
def adyen(test_database: TestDatabase) -> Iterator[ServedAdyen]:
    specs = vendor_specs() / "adyen"
    if not (specs / "CheckoutService-v71.json").is_file():
        pytest.skip(f"Adyen's published API descriptions are missing: {specs} (set BASTION_VENDOR_SPECS)")
    local = LocalAdyen(base_url=test_database.provider_urls["adyen"])
    served = ServedAdyen(local, local.app, _port(test_database, "adyen"), "local Adyen")
    served.start()
    yield served
    served.stop()


class LocalStripe(Served[StripeServer]):
    @property
    def server(self) -> StripeServer:
        return self.processor


@pytest.fixture(scope="session")
def local_stripe(test_database: TestDatabase, vault: ApiProcess) -> Iterator[LocalStripe]:
    resources = fixtures()
    if resources is None:
        pytest.skip(f"Stripe's published fixtures are not at {FIXTURES} (set BASTION_VENDOR_SPECS to the vendor specs)")
    server = StripeServer(resources)
    local = LocalStripe(server, server.app, _port(test_database, "stripe"), "local Stripe")
    local.start()
    yield local
    local.stop()


class LocalBraintree(Served[BraintreeGateway]):
    @property
    def gateway(self) -> BraintreeGateway:
        return self.processor


@pytest.fixture(scope="session")
def local_braintree(test_database: TestDatabase) -> Iterator[LocalBraintree]:
    gateway = BraintreeGateway()
    served = LocalBraintree(gateway, gateway, _port(test_database, "braintree"), "local Braintree")
    served.start()
    yield served
    served.stop()
