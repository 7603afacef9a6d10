"""Errors a user can cause and fix. The CLI prints their message alone (no traceback) and exits 2."""


class LrrunError(Exception):
    """Base for user-facing errors: the message names the key, the value and the fix."""


class ConfigError(LrrunError):
    """A config value that is unknown, mistyped or out of range."""


class DataError(LrrunError):
    """A dataset that cannot be found, prepared or downloaded."""


def root_cause(exc: BaseException) -> str:
    """The first line of the innermost cause: what to show from a wrapped library error."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
