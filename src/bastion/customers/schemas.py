"""Request bodies of the customers API. Unknown fields are rejected, every field is bounded."""

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from bastion.platform.http.schemas import FREE_TEXT, MetadataChanges

# The local part refuses spaces and control characters by explicit ranges, not `\s`: Python's and
# JSON Schema's (ECMAScript's) `\s` differ (U+0085), and the document must say what is checked.
_EMAIL = re.compile(
    r"[^@\x00-\x20\x7f-\x9f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
# At least four digits, the first after an optional +, with spaces, dashes, dots or parentheses between.
_PHONE = re.compile(r"\+?[0-9](?:[ ()\-.]*[0-9]){3}[0-9 ()\-.]*")


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("must be an email address like name@example.com")
    return value


def _phone(value: str) -> str:
    if not _PHONE.fullmatch(value):
        raise ValueError("must be a phone number: digits with optional leading +, spaces, dashes, dots or parentheses")
    return value


# The patterns are stated in the document as the validators check them (which word their errors).
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=512),
    AfterValidator(_email),
    Field(json_schema_extra={"pattern": f"^{_EMAIL.pattern}$"}),
]
Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=32),
    AfterValidator(_phone),
    Field(json_schema_extra={"pattern": f"^{_PHONE.pattern}$"}),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256), FREE_TEXT]
Description = Annotated[str, StringConstraints(max_length=350), FREE_TEXT]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email | None = None
    name: Name | None = None
    phone: Phone | None = None
    description: Description | None = None
    metadata: MetadataChanges = Field(default_factory=dict)


class CustomerUpdate(BaseModel):
    """Fields left out stay as they are; fields sent as null are cleared."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email | None = None
    name: Name | None = None
    phone: Phone | None = None
    description: Description | None = None
    metadata: MetadataChanges | None = None
