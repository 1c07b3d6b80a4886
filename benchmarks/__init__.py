"""`make bench`: the app against the bare inngest-py FastAPI example (see benchmarks/README.md)."""
