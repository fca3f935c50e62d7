"""Test-only entry points and helpers that tests start as processes (``python -m tests.support.<name>``)."""
