"""Local servers that speak the payment processors' wire formats, for tests with no network."""
