"""The sandbox acquirer (`bastion acquirer`): a card acquirer of its own, in its own process,
schema and role, that answers by test card number the way a real one answers by card. Bastion's
sandbox connector talks to it over HTTPS as it would to any processor; tests compare Bastion's
books with the acquirer's own record (docs/payments.md, The sandbox acquirer).

It is not a context of the platform: nothing of Bastion imports it but the CLI and bootstrap.
"""
