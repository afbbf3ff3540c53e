"""Each process's grant (ADR 15): only its own role and the keys of its purposes, never the
keyring's root; carried on stdin, read once, and refused when it is not one serve wrote."""

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bastion import bootstrap, connectors, webhooks
from bastion.audit.chain import CHAIN_KEY_PURPOSE, CHECKPOINT_KEY_PURPOSE
from bastion.kernel.errors import ConfigurationError
from bastion.platform.crypto import DerivedKeys, LocalKeyring, signing_purpose
from bastion.platform.grant import GRANT_BYTES_MAX, GRANT_ENV, Grant
from bastion.platform.settings import Settings
from tests.support.postgres import TestDatabase

_READ_GRANT = """
import os
from bastion.platform.grant import Grant
grant = Grant.received()
print(grant.database_dsn if grant else None)
print(os.readlink("/proc/self/fd/0"))
print(os.environ.get("BASTION_GRANT"))
"""


def _grant() -> Grant:
    return Grant(
        database_dsn="postgresql://someone:pw@127.0.0.1/db",
        keys={"api-key-hash": bytes(range(32))},
        metrics_token=b"token",
        demo_keys={"secret": "sk_test_x"},
        pkcs11_pin="1234",
    )


def test_a_grant_survives_its_journey_whole() -> None:
    assert Grant.from_bytes(_grant().to_bytes()) == _grant()


def test_a_grant_is_read_from_stdin_once_and_stdin_is_then_dev_null(tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", _READ_GRANT],
        input=_grant().to_bytes(),
        env={"PATH": "/usr/bin:/bin", GRANT_ENV: "stdin"},
        capture_output=True,
        check=True,
        cwd=tmp_path,
    )
    assert ran.stdout.decode().splitlines() == [_grant().database_dsn, "/dev/null", "None"]


def test_without_the_variable_no_grant_is_read() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    ran = subprocess.run([sys.executable, "-c", _READ_GRANT], input=_grant().to_bytes(), env=env, capture_output=True, check=True)
    assert ran.stdout.decode().splitlines()[0] == "None"


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"database_dsn": "x"}', b'{"database_dsn": "x", "keys": {"a": "!!"}}'])
def test_what_serve_did_not_write_is_refused(raw: bytes) -> None:
    with pytest.raises(ConfigurationError, match="not one `bastion serve` wrote"):
        Grant.from_bytes(raw)


def test_a_grant_beyond_its_limit_is_not_sent() -> None:
    huge = Grant(database_dsn="x" * GRANT_BYTES_MAX, keys={})
    with open("/dev/null", "wb") as sink, pytest.raises(ConfigurationError, match="exceeds"):
        huge.send(sink)


def test_derived_keys_serve_their_purposes_alike_and_refuse_others(tmp_path: Path) -> None:
    root = LocalKeyring.open(tmp_path, create=True)
    derived = DerivedKeys(root.derive([CHAIN_KEY_PURPOSE, signing_purpose(CHECKPOINT_KEY_PURPOSE)]))
    assert derived.secret(CHAIN_KEY_PURPOSE) == root.secret(CHAIN_KEY_PURPOSE)
    assert derived.signing_key(CHECKPOINT_KEY_PURPOSE).public_key() == root.signing_key(CHECKPOINT_KEY_PURPOSE).public_key()
    with pytest.raises(ConfigurationError, match="not granted the key of purpose 'api-key-hash'"):
        derived.secret(bootstrap.API_KEY_HASH_PURPOSE)


def test_each_process_is_granted_its_role_and_its_purposes_alone(settings: Settings, test_database: TestDatabase) -> None:
    root = (settings.data_dir / "secrets" / "keyring.key").read_bytes()
    roles = test_database.roles
    grants = {
        "api": (bootstrap.api_grant(settings, test_database.owner_url, demo=False), roles.app),
        "vault": (bootstrap.vault_grant(settings, test_database.owner_url), roles.vault),
        "worker": (bootstrap.worker_grant(settings, test_database.owner_url), roles.worker),
        "acquirer": (bootstrap.acquirer_grant(settings, test_database.owner_url), roles.acquirer),
    }
    purposes = {
        "api": {
            bootstrap.API_KEY_HASH_PURPOSE,
            bootstrap.ACQUIRER_API_KEY_PURPOSE,
            bootstrap.ACQUIRER_NOTIFICATIONS_PURPOSE,
            webhooks.SECRETS_KEY_PURPOSE,
            connectors.CREDENTIALS_KEY_PURPOSE,
        },
        "acquirer": {bootstrap.ACQUIRER_API_KEY_PURPOSE, bootstrap.ACQUIRER_NOTIFICATIONS_PURPOSE},
        "vault": {bootstrap.API_KEY_HASH_PURPOSE},
        "worker": {CHAIN_KEY_PURPOSE, signing_purpose(CHECKPOINT_KEY_PURPOSE), webhooks.SECRETS_KEY_PURPOSE},
    }
    for name, (grant, role) in grants.items():
        assert make_url(grant.database_dsn).username == role, name
        assert set(grant.keys) == purposes[name], name
        assert root not in grant.to_bytes(), name
        assert root.hex().encode() not in grant.to_bytes(), name
    assert grants["api"][0].metrics_token is not None
    assert grants["vault"][0].metrics_token is None
    assert grants["worker"][0].metrics_token is None
    # The local keyring needs no PIN: none is handed out.
    assert grants["vault"][0].pkcs11_pin is None
