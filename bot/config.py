"""Settings: the only code in Earful that reads the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.errors import ConfigError

ENV_PREFIX = "EARFUL_"


class Settings(BaseModel):
    """Every setting Earful reads, typed, with its default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("earful", appauthor=False))
    )
    database_url: str | None = None
    triage_channel: str = "#earful-triage"
    # A directory of playbook files; None uses the bundled defaults (playbooks/defaults).
    playbooks: Path | None = None
    max_text_chars: int = Field(default=20_000, ge=280)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    log_level: str = "WARNING"
    # "earful" runs the classifiers; "none" keeps the visible pass-through (mentions unclassified).
    classifier: Literal["earful", "none"] = "earful"
    # "bundled", a directory with an Earful model, or a Hugging Face model id or path.
    sentiment_model: str = "bundled"
    # For a Hugging Face model: its labels → Earful's, e.g. "LABEL_0=negative,LABEL_1=neutral,…".
    sentiment_labels: str | None = None
    # Slack: with a bot token, cards go to Slack; without one, to the terminal.
    slack_bot_token: SecretStr | None = None
    # Playbook channel → Slack channel id, e.g. "#care=C0123,#incidents=C0456"; unmapped names
    # are sent as they are (Slack accepts a public channel's name).
    slack_channels: str | None = None
    # Verifies that requests to `earful run`'s Slack endpoint come from Slack (HTTP mode).
    slack_signing_secret: SecretStr | None = None
    # An app-level token (xapp-…, scope connections:write): `earful run` then takes Slack's
    # events over a Socket Mode WebSocket, with no public URL and no signing secret.
    slack_app_token: SecretStr | None = None
    # Slack user ids allowed to act on cards (comma-separated).
    slack_agents: str | None = None
    # The Web API's base URL; only changed for a stand-in or a proxy.
    slack_api_url: str = "https://slack.com/api/"
    # Sources (X, Telegram, feeds, the webhook): what to watch, in one YAML file.
    sources_file: Path | None = None
    # X: app-only bearer token to read; user-context OAuth 1.0a keys to reply as the brand.
    x_bearer_token: SecretStr | None = None
    x_consumer_key: SecretStr | None = None
    x_consumer_secret: SecretStr | None = None
    x_access_token: SecretStr | None = None
    x_access_token_secret: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    # The Bot API's base URL; only changed for a stand-in or a local Bot API server.
    telegram_api_url: str = "https://api.telegram.org/bot"
    # Telegram's webhook mode: the secret token Telegram sends with each update.
    telegram_webhook_secret: SecretStr | None = None
    # Signs requests to the webhook source (HMAC-SHA256 over timestamp and body).
    webhook_secret: SecretStr | None = None
    model_threads: int = Field(default=2, ge=1, le=64)
    model_batch_size: int = Field(default=32, ge=1, le=1024)

    @field_validator("slack_app_token")
    @classmethod
    def _app_level_token(cls, token: SecretStr | None) -> SecretStr | None:
        # The message never repeats the value: it is a credential.
        if token is not None and not token.get_secret_value().startswith("xapp-"):
            raise ValueError(
                "must be an app-level token, starting with xapp- (Basic Information → "
                "App-Level Tokens, scope connections:write)"
            )
        return token

    @property
    def resolved_database_url(self) -> str:
        """The configured database URL, or the SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'earful.db'}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from ``EARFUL_*`` variables, then explicit overrides (CLI options)."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw not in (None, ""):
            values[name] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"setting {ENV_PREFIX}{field.upper()}: {first['msg']}") from None
