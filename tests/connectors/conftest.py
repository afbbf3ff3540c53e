"""The session's local processor servers, on the ports the session's vault forwards each
processor's requests to (`TestDatabase.provider_urls`), for every connector's tests and the
conformance suite."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import pytest

from tests.support.asgi import serving
from tests.support.postgres import TestDatabase
from tests.support.providers.adyen import LocalAdyen, vendor_specs


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
