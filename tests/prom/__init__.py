"""A real Prometheus (Debian's binary) scraping the app: the repo's scrape config, alert rules and dashboards."""
