"""Data: procedural task generators, suites, and dataset preparation into one row schema."""
