"""Request bodies of the connectors API. Unknown fields are rejected, every field is bounded."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bastion.connectors.domain import CREDENTIAL_LENGTH_MAX
from bastion.platform.http.outbound import URL_LENGTH_MAX
from bastion.platform.http.schemas import FREE_TEXT, MetadataChanges

# Printable ASCII without spaces: what every processor's credentials are made of. Each kind's
# own shape is checked by the service, in the account's mode (domain.py).
Credential = Annotated[str, StringConstraints(min_length=1, max_length=CREDENTIAL_LENGTH_MAX, pattern=r"^[!-~]+$")]
Label = Annotated[str, StringConstraints(max_length=100), FREE_TEXT]
BaseUrl = Annotated[str, StringConstraints(min_length=1, max_length=URL_LENGTH_MAX), FREE_TEXT]
ConnectorName = Literal["sandbox", "stripe", "braintree", "adyen"]


class ConnectorCredentials(BaseModel):
    """Every credential any connector takes; each connector needs its own (docs/connectors.md)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    secret_key: Credential | None = None
    webhook_secret: Credential | None = None
    merchant_id: Credential | None = None
    public_key: Credential | None = None
    private_key: Credential | None = None
    api_key: Credential | None = None
    merchant_account: Credential | None = None
    hmac_key: Credential | None = None
    live_url_prefix: Credential | None = None


class ConnectorAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    connector: ConnectorName
    credentials: ConnectorCredentials = Field(default_factory=ConnectorCredentials)
    label: Label | None = None
    # Instead of the connector's default for the mode: a local server that speaks its protocol.
    base_url: BaseUrl | None = None
    metadata: MetadataChanges = Field(default_factory=dict)


class ConnectorAccountUpdate(BaseModel):
    """Fields left out stay as they are; `label` sent as null is cleared."""

    model_config = ConfigDict(extra="forbid", strict=True)

    label: Label | None = None
    metadata: MetadataChanges | None = None
