"""Connectors: the kinds of processor Bastion knows and what each can do (the feature matrix),
and each merchant's accounts at them, their credentials sealed (docs/connectors.md)."""

from bastion.connectors.domain import KINDS, Capabilities, ConnectorKind
from bastion.connectors.events import EVENT_TYPES
from bastion.connectors.secrets import CREDENTIALS_KEY_PURPOSE, CredentialsSealer, SealedCredentials
from bastion.connectors.service import enabled_accounts

__all__ = [
    "CREDENTIALS_KEY_PURPOSE",
    "EVENT_TYPES",
    "KINDS",
    "Capabilities",
    "ConnectorKind",
    "CredentialsSealer",
    "SealedCredentials",
    "enabled_accounts",
]
