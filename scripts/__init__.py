"""The repository's command-line scripts; importable for their tests."""
