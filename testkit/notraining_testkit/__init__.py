"""The notraining-agent test kit: emulators of everything the agent talks to, and the demo.

A separate distribution from the agent, so the wheel that goes on every VM carries none
of it. ``notraining-agent demo`` imports :mod:`notraining_testkit.demo` when it is installed.
"""
