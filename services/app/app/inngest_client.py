"""The one Inngest client, configured from settings (never from the SDK's own env lookups)."""

from __future__ import annotations

import logging

import inngest
from inngest._internal import net

from app.logs import RunLogContext
from app.metrics import InngestMetrics
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
    # The SDK reads the fallback key only from os.environ; hand it the validated value instead so that
    # key rotation follows the settings model.
    fallback = settings.inngest_signing_key_fallback
    if fallback != client.signing_key_fallback:
        client._signing_key_fallback = fallback
        client._http_client = net.AuthenticatedHTTPClient(
            env=client.env, signing_key=client.signing_key, signing_key_fallback=fallback
        )
    return client
