"""Logging set-up: one place decides levels, and the chatty HTTP loggers stay quiet."""

from __future__ import annotations

import logging

# These log request URLs and headers at INFO/DEBUG, which carry tokens.
QUIET_LOGGERS = (
    "httpx",
    "httpcore",
    "tweepy",
    "urllib3",
    "telegram",
    "slack_sdk",
    "slack_bolt",
    # OAuth 1.0a signing (X replies) logs the consumer key and access token at DEBUG.
    "oauthlib",
    "requests_oauthlib",
)


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``; libraries that leak tokens never go below WARNING."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
