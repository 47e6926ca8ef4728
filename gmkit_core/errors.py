"""Errors a user can cause. The CLI prints them as one ``error: ...`` line."""

from __future__ import annotations


class GmkitError(Exception):
    """Base of every error that is the user's to fix (bad file, option, name)."""


class ConfigError(GmkitError, ValueError):
    """An option is unknown or its value is invalid; the message names the key."""


class DataError(GmkitError, ValueError):
    """A data source is missing, malformed or unsuitable; the message names it."""


class ArtifactError(GmkitError):
    """A run file is truncated, foreign or from an incompatible version."""


class NotRegisteredError(GmkitError, LookupError):
    """No plugin provides the requested model or component."""


class TrainingError(GmkitError):
    """Training cannot go on (e.g. the loss became NaN); the last good run file is kept."""
