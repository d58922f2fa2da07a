"""Operator start-up: applies `OperatorSettings` to kopf's own settings."""

import logging
from typing import Any

import kopf

from kabin import settings as settings_module


@kopf.on.startup()
async def configure(*, settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    """Tune kopf from kabin's settings before any watch starts."""
    ours = settings_module.load()
    # One operator process per cluster for now; peering needs its own CRDs.
    settings.peering.standalone = True
    settings.networking.error_backoffs = ours.error_backoffs
    settings.queueing.error_delays = ours.error_backoffs
    # Events are the user-facing story (`kubectl describe`); kopf's own
    # per-handler chatter would drown it.
    settings.posting.level = logging.WARNING
    logger.info("kabin operator configured: %s", ours.model_dump())
