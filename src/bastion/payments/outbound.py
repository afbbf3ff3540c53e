"""The outbound HTTP clients of the connectors built per merchant account (Stripe's, Braintree's).

A connector is built for an account and dropped from the directory's memory without a word
(payments/directory.py), so it owns nothing to close: the connectors of a process share these
clients, one per mode. They are the SSRF guard's, since an account's base URL is the merchant's
to set; in test mode it may be a local server on loopback (docs/connectors.md, Base URLs).
"""

from typing import Final

from bastion.platform.http.outbound import DestinationPolicy, guarded_client

# The deadline of one call to a processor, connecting to the last byte of its answer.
PROCESSOR_TIMEOUT_S: Final = 10.0


class ProcessorClients:
    """Whoever makes it closes `clients` (the API's shutdown closes `Services.outbound`)."""

    def __init__(self, *, timeout_s: float = PROCESSOR_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.clients = {
            livemode: guarded_client(DestinationPolicy(allow_loopback_http=not livemode), timeout_s=timeout_s)
            for livemode in (False, True)
        }
