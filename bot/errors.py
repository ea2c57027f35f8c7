"""Earful's exception tree.

EarfulError
├── ConfigError              bad settings or environment; start-up stops
│   └── PlaybookError        an invalid playbook file, with its file and line
├── InputError               a bad record in a file or request, with where it was
│   └── ImportRejected       a whole CRM import refused, with every bad row
├── StorageError             the database is unreachable or at the wrong revision
├── SourceError              a source could not be read now; polled again after a backoff
├── PipelineError            a step failed for one mention
│   └── DropMention          a step decided the mention must go no further
└── DeliveryError            an effect on the outside world failed
    ├── RetryLater           transient: try again after ``retry_after`` seconds
    └── DeliveryRejected     permanent: the platform refused it
"""

from __future__ import annotations

from collections.abc import Sequence


class EarfulError(Exception):
    """Base of every error Earful raises on purpose."""


class ConfigError(EarfulError):
    """The configuration or environment is invalid."""


class PlaybookError(ConfigError):
    """A playbook file is invalid; ``where`` is ``file:line``."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class InputError(EarfulError):
    """One record of an input file or request is invalid."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class ImportRejected(EarfulError):
    """A CRM import was refused as a whole because some rows are invalid."""

    def __init__(self, errors: Sequence[InputError]) -> None:
        super().__init__(f"{len(errors)} invalid row(s); nothing was imported")
        self.errors = tuple(errors)


class StorageError(EarfulError):
    """The database cannot be used as it is."""


class SourceError(EarfulError):
    """Reading a source failed for now (network, 5xx, timeout); the poller backs off.

    ``retry_after``: seconds the platform asked us to wait, when it said.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PipelineError(EarfulError):
    """A pipeline step failed for one mention."""


class DropMention(PipelineError):
    """Raised by a step to stop a mention from going further, with the reason."""


class DeliveryError(EarfulError):
    """An effect on the outside world (a card, a reply) could not be delivered."""


class RetryLater(DeliveryError):
    """A transient failure; the outbox retries after ``retry_after`` seconds."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class DeliveryRejected(DeliveryError):
    """A permanent failure; the outbox stops retrying and records the reason."""
