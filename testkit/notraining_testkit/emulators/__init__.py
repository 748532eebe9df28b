"""Local fakes of everything the agent talks to, for ``notraining-agent demo`` and the tests.

Each emulator is a class that builds an ``aiohttp.web.Application`` and exposes
Python methods to inspect and steer it (record of calls, failures to inject).
The real google-auth and google-cloud-compute libraries work against them.
"""
