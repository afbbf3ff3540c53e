"""Bastion: a self-hosted, security-first payments platform."""

__version__ = "0.1.0"
