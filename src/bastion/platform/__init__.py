"""Infrastructure shared by every context: settings, database, crypto, logging, metrics."""
