"""Malformed input against the app as a real process: protocol endpoint and public event API."""
