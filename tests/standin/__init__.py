"""Loopback stand-in for the Inngest server (`inngest start`), for tests only.

Run it: `python -m tests.standin --port 8288 --sdk-url URL --signing-key HEX --event-key KEY`.
Reuse it from pytest: `tests/standin/fixtures.py`.
"""
