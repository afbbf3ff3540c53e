"""Request bodies of the webhooks API. Unknown fields are rejected, every field is bounded."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bastion.platform.http.outbound import URL_LENGTH_MAX
from bastion.platform.http.schemas import FREE_TEXT, WHOLE, MetadataChanges
from bastion.webhooks.domain import ENABLED_EVENTS_MAX, SignatureScheme

# A card number in a URL or a pattern would be stored and logged, and echoed by the refusals.
Url = Annotated[str, StringConstraints(min_length=1, max_length=URL_LENGTH_MAX), FREE_TEXT]
EventPattern = Annotated[str, StringConstraints(min_length=1, max_length=128), FREE_TEXT]
EnabledEvents = Annotated[list[EventPattern], Field(min_length=1, max_length=ENABLED_EVENTS_MAX)]
Description = Annotated[str, StringConstraints(max_length=350), FREE_TEXT]


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url
    enabled_events: EnabledEvents
    description: Description | None = None
    metadata: MetadataChanges = Field(default_factory=dict)
    ordered: bool = False
    signature_scheme: SignatureScheme = "standard_webhooks"


class WebhookEndpointUpdate(BaseModel):
    """Fields left out stay as they are; `description` sent as null is cleared."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url | None = None
    enabled_events: EnabledEvents | None = None
    description: Description | None = None
    metadata: MetadataChanges | None = None
    ordered: bool | None = None
    signature_scheme: SignatureScheme | None = None
    disabled: bool | None = None


class WebhookEndpointRecover(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # Unix seconds: dead letters created since then are queued again (at most 14 days back).
    since: Annotated[int, Field(ge=0, le=2**40), WHOLE]
