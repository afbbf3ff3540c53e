"""The card vault, its own process and security zone (ADR 9). It has no face for other
contexts: the API reaches it only over mutual TLS (`bastion.platform.vault_client`); the CLI
and bootstrap import its modules to run and administer it."""
