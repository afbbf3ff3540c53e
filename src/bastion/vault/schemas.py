"""Request and response shapes of the vault's two listeners."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.vault.domain import NAME_LENGTH_MAX

# Generous for "4242 4242 4242 4242 123" typos, tight enough that nothing else fits.
_NUMBER_LENGTH_MAX = 40
_CVC_LENGTH_MAX = 8
_SHORT_TEXT = 64
_LANGUAGES_MAX = 10
_DURATION_MS_MAX = 86_400_000
_KEYSTROKES_MAX = 10_000
FORWARD_BODY_CHARS_MAX = 65_536
FORWARD_HEADERS_MAX = 20
FORWARD_FIELDS_MAX = 50


class CardInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(max_length=_NUMBER_LENGTH_MAX)
    exp_month: int
    exp_year: int
    cvc: str | None = Field(default=None, max_length=_CVC_LENGTH_MAX)
    name: str | None = Field(default=None, max_length=NAME_LENGTH_MAX)


class Screen(BaseModel):
    width: int = Field(ge=0, le=100_000)
    height: int = Field(ge=0, le=100_000)
    color_depth: int | None = Field(default=None, ge=0, le=64)
    pixel_ratio: float | None = Field(default=None, ge=0, le=100)


class DeviceSignals(BaseModel):
    """What the fields saw of the device. Unknown keys are dropped, not refused: a newer
    bastion.js may send more than this vault knows."""

    timezone: str | None = Field(default=None, max_length=_SHORT_TEXT)
    languages: list[Annotated[str, Field(max_length=_SHORT_TEXT)]] = Field(default_factory=list, max_length=_LANGUAGES_MAX)
    screen: Screen | None = None
    platform: str | None = Field(default=None, max_length=_SHORT_TEXT)
    user_agent_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")


class IntervalSummary(BaseModel):
    mean: float = Field(ge=0, le=_DURATION_MS_MAX)
    stdev: float = Field(ge=0, le=_DURATION_MS_MAX)
    min: float = Field(ge=0, le=_DURATION_MS_MAX)
    max: float = Field(ge=0, le=_DURATION_MS_MAX)


class BehaviourSignals(BaseModel):
    """How the number was entered, as summaries only: never the keys themselves."""

    keystroke_count: int = Field(default=0, ge=0, le=_KEYSTROKES_MAX)
    inter_key_interval_ms: IntervalSummary | None = None
    pasted: bool = False
    time_to_complete_ms: int | None = Field(default=None, ge=0, le=_DURATION_MS_MAX)


class Signals(BaseModel):
    device: DeviceSignals = Field(default_factory=DeviceSignals)
    behaviour: BehaviourSignals = Field(default_factory=BehaviourSignals)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card: CardInput
    signals: Signals = Field(default_factory=Signals)


class TenantRequest(BaseModel):
    """The internal listener serves only the API, authenticated by its client certificate;
    the API names the merchant it acts for."""

    model_config = ConfigDict(extra="forbid")

    merchant_id: str = Field(max_length=64)
    livemode: bool


class Exchange(TenantRequest):
    payment_method_id: str = Field(max_length=64)


class ForwardedRequest(BaseModel):
    """What to send to the processor. `{{card.number}}`, `{{card.exp_month}}`,
    `{{card.exp_year}}`, `{{card.cvc}}` and `{{card.name}}` in the body are filled in by the
    vault; headers come from an allowlist and carry no card data (`vault/forwarding.py`)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = "POST"
    # Not "//...": joined to anything, that names another host (a network-path reference).
    path: str = Field(pattern=r"^/([A-Za-z0-9._~%-][A-Za-z0-9/._~%-]*)?$", max_length=512)
    headers: dict[str, Annotated[str, Field(max_length=1_024)]] = Field(default_factory=dict, max_length=FORWARD_HEADERS_MAX)
    body: str = Field(default="", max_length=FORWARD_BODY_CHARS_MAX)


class AnswerFields(BaseModel):
    """The fields the caller wants from the processor's JSON answer: name -> JSON Pointer
    (RFC 6901). With them the vault returns those values only, never the raw body."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[
        Annotated[str, Field(pattern="^[a-z][a-z0-9_]{0,63}$")],
        Annotated[str, Field(pattern="^(/[^/]*)*$", max_length=256)],
    ] = Field(min_length=1, max_length=FORWARD_FIELDS_MAX)


class Forward(TenantRequest):
    connector: str = Field(max_length=64)
    card: str = Field(max_length=64, description="The vault card behind a payment method (`vault_card_id`).")
    request: ForwardedRequest
    answer: AnswerFields | None = None


class ForwardResponse(BaseModel):
    status: int
    headers: dict[str, str]
    # The raw answer, card numbers and secrets masked, when no `answer.fields` were asked for.
    body: str | None
    fields: dict[str, Any] | None


def signals_document(signals: Signals) -> dict[str, Any]:
    return signals.model_dump(mode="json")
