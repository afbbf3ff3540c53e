"""The credential a request presents: `Authorization: Bearer <token>`."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header value; None for any other."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
