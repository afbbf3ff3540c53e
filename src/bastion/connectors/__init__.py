"""Connectors: the kinds of processor Bastion knows and what each can do (the feature matrix),
and each merchant's accounts at them, their credentials sealed (docs/connectors.md)."""

from bastion.connectors.domain import KINDS, Capabilities, ConnectorKind, OpenedAccount
from bastion.connectors.events import EVENT_TYPES
from bastion.connectors.secrets import CREDENTIALS_KEY_PURPOSE, CredentialsSealer, SealedCredentials
from bastion.connectors.service import (
    account_owner,
    enabled_account,
    enabled_accounts,
    oldest_enabled_account,
    open_account,
)

__all__ = [
    "CREDENTIALS_KEY_PURPOSE",
    "EVENT_TYPES",
    "KINDS",
    "Capabilities",
    "ConnectorKind",
    "CredentialsSealer",
    "OpenedAccount",
    "SealedCredentials",
    "account_owner",
    "enabled_account",
    "enabled_accounts",
    "oldest_enabled_account",
    "open_account",
]
