"""Errors shared by the commands: each carries a one-line message for the user."""

from __future__ import annotations


class MissingAssetError(ValueError):
    """A model file the command needs is not where it was looked for."""


class OutputExistsError(ValueError):
    """The output file exists and the user did not ask to replace it."""


# What a command reports as a one-line error instead of a traceback. Our own error
# classes derive from ValueError (bad input) or OSError (files, devices, network).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
