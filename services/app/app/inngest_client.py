"""The one Inngest client, configured from settings (never from the SDK's own env lookups)."""

from __future__ import annotations

import logging

import inngest

from app.logs import RunLogContext
from app.metrics import InngestMetrics
from app.sdk import configure_client
from app.settings import Settings


def build_client(settings: Settings) -> inngest.Inngest:
    client = inngest.Inngest(
        app_id=settings.inngest_app_id,
        app_version=settings.app_version,
        # dev talks to the dev server unsigned; self-hosted and cloud are production mode (signed).
        is_production=not settings.is_dev,
        api_base_url=settings.api_base_url,
        event_api_base_url=settings.api_base_url,
        event_key=settings.inngest_event_key,
        signing_key=settings.signing_key,
        logger=logging.getLogger("app.inngest"),
        middleware=[RunLogContext, InngestMetrics],
        request_timeout=10_000,
    )
    # Key rotation follows the settings model, not the SDK's own os.environ lookup.
    configure_client(client, settings.inngest_signing_key_fallback)
    return client
