"""The client's address as the server saw it (or as a trusted proxy reported it: uvicorn's
`forwarded_allow_ips`, loopback by default)."""

import ipaddress

from starlette.requests import Request


def client_ip(request: Request) -> str | None:
    # Unix-socket and test transports give no IP; the audit column is INET.
    host = request.client.host if request.client else None
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None
