"""Local servers that speak the processors' wire formats, for the connectors' tests."""
