"""One module per measured phase; each takes the running environment and returns its JSON section."""
