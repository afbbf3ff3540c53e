"""Pure rules of connectors: the kinds of processor Bastion knows, what each declares it can do
(the feature matrix), the credentials each needs and how they look, where each is reached by
default, and how credentials are shown once stored (masked)."""

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from bastion.connectors.errors import ConnectorCredentialsInvalid, ConnectorModeUnsupported
from bastion.platform.db import Tenant
from bastion.platform.settings import SANDBOX_CONNECTOR

# A merchant's enabled connector accounts in each mode; disabled ones stay, readable, beside them.
ACCOUNTS_PER_MODE_MAX: Final = 32
# The longest credential value taken (Adyen's API keys are the longest, about 200 characters).
CREDENTIAL_LENGTH_MAX: Final = 1024
# How many characters of a secret credential its masked form shows, as Stripe's dashboard does.
MASK_VISIBLE: Final = 4
MASK: Final = "…"
BOTH_MODES: Final = frozenset({False, True})
LIVE_ONLY: Final = frozenset({True})


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a connector declares it can do; a flow it lacks is refused before it is tried."""

    currencies: frozenset[str] | None  # None: every currency the processor presents
    brands: frozenset[str]
    manual_capture: bool
    partial_capture: bool
    partial_refunds: bool
    # More than one refund of the same charge, until its captured amount is refunded.
    multiple_refunds: bool
    three_d_secure: bool
    # The processor tells Bastion of changes (captures, refunds, disputes) by signed notifications.
    notifications: bool


@dataclass(frozen=True, slots=True)
class OpenedAccount:
    """A merchant's account at a processor, opened for its connector: the credentials are in
    clear only here, in memory, never in a command's state, a log or an answer (ADR 26)."""

    id: str  # `ca_...`
    connector: str
    tenant: Tenant
    credentials: Mapping[str, str]
    base_url: str


@dataclass(frozen=True, slots=True)
class CredentialField:
    name: str
    # Masked in every answer (its last characters only); identifiers are shown whole.
    secret: bool
    # The whole value; `{mode}` is `test` or `live`, the mode of the account.
    pattern: str
    # What a valid value is, for the refusal (which never repeats the value).
    rule: str
    # Shown before the last characters of a secret; `{mode}` as in `pattern`.
    mask_prefix: str = ""
    # The modes (livemode values) in which the connector needs it.
    modes: frozenset[bool] = BOTH_MODES

    def matches(self, value: str, livemode: bool) -> bool:
        return re.fullmatch(self.pattern.format(mode=_mode(livemode)), value, re.ASCII) is not None

    def masked(self, value: str, livemode: bool) -> str:
        if not self.secret:
            return value
        return f"{self.mask_prefix.format(mode=_mode(livemode))}{MASK}{value[-MASK_VISIBLE:]}"


@dataclass(frozen=True, slots=True)
class ConnectorKind:
    name: str
    display_name: str
    capabilities: Capabilities
    credentials: tuple[CredentialField, ...]
    # Where it is reached by default, by livemode; `{field}` is filled from the credentials.
    # None for the sandbox acquirer: the platform's own setting (BASTION_ACQUIRER_URL).
    base_urls: Mapping[bool, str] | None
    modes: frozenset[bool] = BOTH_MODES

    def credential_fields(self, livemode: bool) -> tuple[CredentialField, ...]:
        return tuple(field for field in self.credentials if livemode in field.modes)


def _mode(livemode: bool) -> str:
    return "live" if livemode else "test"


# Bastion's card brands (payment methods' `card[brand]`) that each processor accepts.
_BRANDS = frozenset({"visa", "mastercard", "amex", "discover", "diners", "jcb", "unionpay"})
# Stripe, Braintree and Adyen each authorize and capture apart, capture less than authorized,
# refund in several parts and send signed notifications, and all but Braintree run 3-D Secure
# server to server (their public API references); the sandbox acquirer does the same by design
# (docs/payments.md).
_FULL = Capabilities(
    currencies=None,
    brands=_BRANDS,
    manual_capture=True,
    partial_capture=True,
    partial_refunds=True,
    multiple_refunds=True,
    three_d_secure=True,
    notifications=True,
)
_HEX_KEY = "(?:[0-9A-Fa-f]{{2}}){{16,64}}"

# Braintree runs 3-D Secure only in its client SDK, which authenticates in the cardholder's browser
# before the sale: a server-to-server connector cannot run the challenge (ADR 28).
_WITHOUT_THREE_D_SECURE = dataclasses.replace(_FULL, three_d_secure=False)

KINDS: Final[Mapping[str, ConnectorKind]] = {
    kind.name: kind
    for kind in (
        ConnectorKind(SANDBOX_CONNECTOR, "Sandbox acquirer", _FULL, (), None, modes=frozenset({False})),
        ConnectorKind(
            "stripe",
            "Stripe",
            _FULL,
            (
                CredentialField(
                    "secret_key",
                    secret=True,
                    pattern="sk_{mode}_[A-Za-z0-9]{{16,247}}",
                    rule="a secret key of this mode: 'sk_{mode}_' and letters and digits",
                    mask_prefix="sk_{mode}_",
                ),
                CredentialField(
                    "webhook_secret",
                    secret=True,
                    pattern="whsec_[A-Za-z0-9+/=]{{16,250}}",
                    rule="an endpoint's signing secret: 'whsec_' and letters and digits",
                    mask_prefix="whsec_",
                ),
            ),
            # One host for both modes: the key says which.
            {False: "https://api.stripe.com", True: "https://api.stripe.com"},
        ),
        ConnectorKind(
            "braintree",
            "Braintree",
            _WITHOUT_THREE_D_SECURE,
            (
                CredentialField("merchant_id", secret=False, pattern="[A-Za-z0-9_-]{{1,64}}", rule="letters, digits, - and _"),
                CredentialField("public_key", secret=False, pattern="[A-Za-z0-9]{{1,64}}", rule="letters and digits"),
                CredentialField("private_key", secret=True, pattern="[A-Za-z0-9]{{16,128}}", rule="16 to 128 letters and digits"),
            ),
            {False: "https://api.sandbox.braintreegateway.com", True: "https://api.braintreegateway.com"},
        ),
        ConnectorKind(
            "adyen",
            "Adyen",
            _FULL,
            (
                CredentialField(
                    "api_key", secret=True, pattern="[!-~]{{16,1024}}", rule="16 or more printable characters, no spaces"
                ),
                CredentialField(
                    "merchant_account", secret=False, pattern="[A-Za-z0-9_.-]{{1,80}}", rule="letters, digits, '.', '-' and '_'"
                ),
                CredentialField(
                    "hmac_key", secret=True, pattern=_HEX_KEY, rule="the notifications' HMAC key: 32 to 128 hex digits"
                ),
                CredentialField(
                    "live_url_prefix",
                    secret=False,
                    pattern="[A-Za-z0-9]{{1,32}}(?:-[A-Za-z0-9]{{1,32}}){{0,3}}",
                    rule="the prefix of the live endpoints in the Customer Area, such as '1797a841fbb37ca7-AdyenDemo'",
                    modes=LIVE_ONLY,
                ),
            ),
            {False: "https://checkout-test.adyen.com", True: "https://{live_url_prefix}-checkout-live.adyenpayments.com"},
        ),
    )
}


def kind_for_mode(name: str, livemode: bool) -> ConnectorKind:
    kind = KINDS[name]
    if livemode not in kind.modes:
        raise ConnectorModeUnsupported(
            f"The {kind.display_name} takes test-mode payments only: use a test key.", param="connector"
        )
    return kind


def checked_credentials(kind: ConnectorKind, livemode: bool, sent: Mapping[str, str | None]) -> dict[str, str]:
    """The credentials, each as `kind` needs it in this mode; a refusal names the field and
    never repeats its value."""
    fields = kind.credential_fields(livemode)
    names = [field.name for field in fields]
    for name, value in sent.items():
        if name not in names and value is not None:
            needed = ", ".join(names) or "none"
            raise ConnectorCredentialsInvalid(
                f"{kind.display_name} takes no credential '{name}' in {_mode(livemode)} mode; it takes: {needed}.",
                param=f"credentials[{name}]",
            )
    checked = {}
    for field in fields:
        value = sent.get(field.name)
        param = f"credentials[{field.name}]"
        if value is None:
            raise ConnectorCredentialsInvalid(f"{kind.display_name} needs credentials[{field.name}].", param=param)
        if not field.matches(value, livemode):
            rule = field.rule.format(mode=_mode(livemode))
            raise ConnectorCredentialsInvalid(f"Invalid {param}: {kind.display_name} expects {rule}.", param=param)
        checked[field.name] = value
    return checked


def masked_credentials(kind: ConnectorKind, livemode: bool, credentials: Mapping[str, str]) -> dict[str, str]:
    """What answers show of the credentials: identifiers whole, secrets by their last characters."""
    return {field.name: field.masked(credentials[field.name], livemode) for field in kind.credential_fields(livemode)}


def default_base_url(kind: ConnectorKind, livemode: bool, credentials: Mapping[str, str], sandbox_url: str) -> str:
    if kind.base_urls is None:
        return sandbox_url
    return kind.base_urls[livemode].format(**credentials)


def origin_problem(url: str) -> str | None:
    """Why a URL checked by the SSRF guard is not a bare origin (None when it is one): a base
    URL is where the connector's own paths start."""
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.username or parts.password:
        return "a base URL is an origin alone: scheme, host and port, no path, query or user"
    return None
