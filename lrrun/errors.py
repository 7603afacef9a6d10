"""Errors a user can cause and fix. The CLI prints their message alone (no traceback) and exits 2."""


class LrrunError(Exception):
    """Base for user-facing errors: the message names the key, the value and the fix."""


class ConfigError(LrrunError):
    """A config value that is unknown, mistyped or out of range."""


class DataError(LrrunError):
    """A dataset that cannot be found, prepared or downloaded."""
