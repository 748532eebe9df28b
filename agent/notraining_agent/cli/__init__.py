"""Operator commands: run, check-config, submit, status, match (and demo, from the test kit)."""
