"""Request bodies of the customers API. Unknown fields are rejected, every field is bounded."""

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from bastion.platform.http.schemas import checked_metadata

_EMAIL = re.compile(
    r"[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_PHONE = re.compile(r"\+?[0-9][0-9 ()\-.]{3,30}")


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("must be an email address like name@example.com")
    return value


def _phone(value: str) -> str:
    if not _PHONE.fullmatch(value) or sum(ch.isdigit() for ch in value) < 4:
        raise ValueError("must be a phone number: digits with optional leading +, spaces, dashes, dots or parentheses")
    return value


Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=512), AfterValidator(_email)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32), AfterValidator(_phone)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Description = Annotated[str, StringConstraints(max_length=350)]
# A metadata value of null (or "") removes that key on update.
Metadata = Annotated[dict[str, str | None], AfterValidator(checked_metadata)]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email | None = None
    name: Name | None = None
    phone: Phone | None = None
    description: Description | None = None
    metadata: Metadata = Field(default_factory=dict)


class CustomerUpdate(BaseModel):
    """Fields left out stay as they are; fields sent as null are cleared."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email | None = None
    name: Name | None = None
    phone: Phone | None = None
    description: Description | None = None
    metadata: Metadata | None = None
