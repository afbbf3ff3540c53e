"""The connectors' rules without a database: each kind's credentials checked in each mode (a
refusal names the field and never repeats the value), their masked form, default base URLs, and
the envelope that seals them."""

import secrets
import typing
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag

from bastion.connectors import KINDS, CredentialsSealer, SealedCredentials
from bastion.connectors.domain import checked_credentials, default_base_url, kind_for_mode, masked_credentials
from bastion.connectors.schemas import ConnectorCredentials, ConnectorName
from bastion.kernel.errors import InvalidRequest
from bastion.payments.sandbox import SandboxConnector


def _alnum(length: int) -> str:
    return secrets.token_hex(length)[:length]


def good(connector: str, livemode: bool) -> dict[str, str]:
    """Credentials of the right shape, random each time (no secret is kept in the repository)."""
    mode = "live" if livemode else "test"
    made = {
        "sandbox": {},
        "stripe": {"secret_key": f"sk_{mode}_{_alnum(32)}", "webhook_secret": f"whsec_{_alnum(32)}"},
        "braintree": {"merchant_id": _alnum(16), "public_key": _alnum(16), "private_key": _alnum(32)},
        "adyen": {"api_key": f"AQE{_alnum(60)}+/=", "merchant_account": "ShopECOM", "hmac_key": secrets.token_hex(32)},
    }[connector]
    if connector == "adyen" and livemode:
        made["live_url_prefix"] = f"{_alnum(16)}-AdyenDemo"
    return made


def test_the_schema_names_every_kind_and_every_credential() -> None:
    assert set(typing.get_args(ConnectorName)) == set(KINDS)
    fields = {field.name for kind in KINDS.values() for field in kind.credentials}
    assert fields == set(ConnectorCredentials.model_fields)


def test_the_sandbox_connector_declares_the_matrix_row_of_its_kind() -> None:
    assert SandboxConnector.capabilities is KINDS["sandbox"].capabilities


@pytest.mark.parametrize(("connector", "livemode"), [(name, live) for name in KINDS for live in (False, True)])
def test_good_credentials_are_taken_in_their_mode(connector: str, livemode: bool) -> None:
    kind = KINDS[connector]
    if livemode not in kind.modes:
        with pytest.raises(InvalidRequest) as refused:
            kind_for_mode(connector, livemode)
        assert refused.value.param == "connector"
        return
    sent = good(connector, livemode)
    assert checked_credentials(kind_for_mode(connector, livemode), livemode, sent) == sent


BAD: list[tuple[str, bool, dict[str, Any], str]] = [
    ("stripe", False, {"secret_key": "sk_live_" + "a" * 32}, "credentials[secret_key]"),
    ("stripe", True, {"secret_key": "sk_test_" + "a" * 32}, "credentials[secret_key]"),
    ("stripe", False, {"secret_key": "rk_test_" + "a" * 32}, "credentials[secret_key]"),
    ("stripe", False, {"secret_key": "sk_test_short"}, "credentials[secret_key]"),
    ("stripe", False, {"webhook_secret": "wh_" + "a" * 32}, "credentials[webhook_secret]"),
    ("stripe", False, {"webhook_secret": None}, "credentials[webhook_secret]"),
    ("stripe", False, {"api_key": "AQE" + "a" * 32}, "credentials[api_key]"),
    ("braintree", False, {"private_key": "not-alnum-" + "a" * 20}, "credentials[private_key]"),
    ("braintree", False, {"merchant_id": "a b"}, "credentials[merchant_id]"),
    ("adyen", False, {"hmac_key": "zz" * 32}, "credentials[hmac_key]"),
    ("adyen", False, {"hmac_key": "abc"}, "credentials[hmac_key]"),
    ("adyen", False, {"live_url_prefix": "1797a841fbb37ca7-AdyenDemo"}, "credentials[live_url_prefix]"),
    ("adyen", True, {"live_url_prefix": None}, "credentials[live_url_prefix]"),
    ("adyen", True, {"live_url_prefix": "https://evil.example/"}, "credentials[live_url_prefix]"),
    ("sandbox", False, {"secret_key": "sk_test_" + "a" * 32}, "credentials[secret_key]"),
]


@pytest.mark.parametrize(("connector", "livemode", "change", "param"), BAD)
def test_a_wrong_or_missing_credential_is_refused_naming_it(
    connector: str, livemode: bool, change: dict[str, Any], param: str
) -> None:
    sent = good(connector, livemode) | change
    with pytest.raises(InvalidRequest) as refused:
        checked_credentials(KINDS[connector], livemode, sent)
    assert refused.value.param == param
    for value in change.values():
        if value is not None:
            assert value not in refused.value.message, "a refusal never repeats the value"


def test_secrets_are_masked_and_identifiers_shown() -> None:
    stripe = good("stripe", livemode=False)
    masked = masked_credentials(KINDS["stripe"], False, stripe)
    assert masked == {
        "secret_key": f"sk_test_…{stripe['secret_key'][-4:]}",
        "webhook_secret": f"whsec_…{stripe['webhook_secret'][-4:]}",
    }
    braintree = good("braintree", livemode=True)
    masked = masked_credentials(KINDS["braintree"], True, braintree)
    assert masked == {
        "merchant_id": braintree["merchant_id"],
        "public_key": braintree["public_key"],
        "private_key": f"…{braintree['private_key'][-4:]}",
    }


def test_default_base_urls_are_the_providers_hosts_per_mode() -> None:
    sandbox_url = "https://127.0.0.1:8003"
    live_adyen = good("adyen", livemode=True)
    assert default_base_url(KINDS["sandbox"], False, {}, sandbox_url) == sandbox_url
    assert default_base_url(KINDS["braintree"], False, {}, sandbox_url) == "https://api.sandbox.braintreegateway.com"
    assert default_base_url(KINDS["braintree"], True, {}, sandbox_url) == "https://api.braintreegateway.com"
    assert default_base_url(KINDS["adyen"], False, {}, sandbox_url) == "https://checkout-test.adyen.com"
    assert (
        default_base_url(KINDS["adyen"], True, live_adyen, sandbox_url)
        == f"https://{live_adyen['live_url_prefix']}-checkout-live.adyenpayments.com"
    )


def test_the_envelope_opens_for_its_own_account_only() -> None:
    sealer = CredentialsSealer(secrets.token_bytes(32))
    credentials = good("stripe", livemode=False)
    sealed = sealer.seal("ca_one", credentials)
    assert sealer.open("ca_one", sealed) == credentials
    for value in credentials.values():
        assert value.encode() not in sealed.credentials_sealed + sealed.data_key_sealed
    with pytest.raises(InvalidTag):
        sealer.open("ca_two", sealed)
    # The data key of another account's envelope does not open this one's credentials.
    other = sealer.seal("ca_one", credentials)
    with pytest.raises(InvalidTag):
        sealer.open("ca_one", SealedCredentials(sealed.credentials_sealed, other.data_key_sealed))
    with pytest.raises(InvalidTag):
        CredentialsSealer(secrets.token_bytes(32)).open("ca_one", sealed)
