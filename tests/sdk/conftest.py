"""The official Stripe SDKs against a live `bastion serve`, one per test module, on a database of
its own. A module's `SERVE_SETTINGS` (environment variables) change its server's settings."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.serve import LiveBastion, live_bastion


@pytest.fixture(scope="module")
def bastion(
    pg_server: tuple[str, Path | None], tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LiveBastion]:
    settings: dict[str, str] = getattr(request.module, "SERVE_SETTINGS", {})
    with live_bastion(pg_server, tmp_path_factory.mktemp("serve"), settings) as live:
        yield live
