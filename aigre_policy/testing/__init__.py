"""Running a pack's tests, invariants and mutants."""
