"""Pure building blocks shared by every context: ids, clock, errors, invariants."""
