"""Risk: the rules that decide, before any connector is called, whether an attempt goes on
(docs/risk.md)."""
