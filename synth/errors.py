"""Errors shared by the commands: each carries a one-line message for the user."""

from __future__ import annotations


class MissingAssetError(ValueError):
    """A model file the command needs is not where it was looked for."""


class ModelFileError(ValueError):
    """A model file (voice, pretrained base, content encoder, pitch model, index) that cannot be
    used: missing, corrupt, hostile or not what it claims. Commands exit 2 on it, with its line."""


class OutputExistsError(ValueError):
    """The output file exists and the user did not ask to replace it."""


# What a command reports as a one-line error instead of a traceback. Our own error
# classes derive from ValueError (bad input) or OSError (files, devices, network).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
