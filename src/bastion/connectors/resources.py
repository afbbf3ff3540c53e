"""The objects the connectors API returns: one definition each, for the answers the service
builds and the OpenAPI document (ADR 11)."""

from typing import Literal

from typing_extensions import TypedDict


class ConnectorCapabilities(TypedDict):
    # The currencies it takes; null: every currency the processor presents, Bastion restricting none.
    currencies: list[str] | None
    brands: list[str]
    manual_capture: bool
    partial_capture: bool
    partial_refunds: bool
    multiple_refunds: bool
    three_d_secure: bool
    notifications: bool


class Connector(TypedDict):
    """A kind of processor, as the feature matrix shows it to the caller's mode."""

    id: str
    object: Literal["connector"]
    name: str
    # Whether Bastion has its connector built and wired: an account of a kind not available is
    # kept for when it is, and takes no payment before.
    available: bool
    modes: list[Literal["test", "live"]]
    capabilities: ConnectorCapabilities
    # The names of the credentials an account of it needs in the caller's mode.
    credentials: list[str]
    # Where it is reached by default in the caller's mode; `{field}` is filled from the credentials.
    base_url: str


class ConnectorList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[Connector]
    has_more: bool


class ConnectorAccount(TypedDict):
    id: str
    object: Literal["connector_account"]
    connector: str
    label: str | None
    # Every credential it holds, masked: identifiers whole, secrets by their last 4 characters.
    credentials: dict[str, str]
    base_url: str
    metadata: dict[str, str]
    status: Literal["enabled", "disabled"]
    # Unix seconds of the disabling, or null.
    disabled_at: int | None
    created: int
    livemode: bool


class ConnectorAccountList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[ConnectorAccount]
    has_more: bool
