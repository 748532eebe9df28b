"""Tests of the test kit: the emulators the agent is proven against must themselves be right."""
