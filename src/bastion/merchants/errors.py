"""Why a merchant's setting is refused: one class per stable code."""

from bastion.kernel.errors import InvalidRequest


class OriginInvalid(InvalidRequest):
    """Not a browser origin (scheme, host and port only), or plain http away from localhost."""

    code = "origin_invalid"


class OriginsLimitReached(InvalidRequest):
    """The merchant has registered as many origins as it may."""

    code = "origins_limit_reached"


class ScopeUnknown(InvalidRequest):
    """An API key asked for a scope that does not exist."""

    code = "scope_unknown"
