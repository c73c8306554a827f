"""The errors `lora` raises for input it cannot use, typed under rvclora's error model."""

from __future__ import annotations

from .. import errors


class LoraConfigError(errors.UsageError):
    """A LoRA setting (rank, dropout, targets) that cannot be used."""


class LoraModuleError(errors.AdapterError):
    """A module LoRA cannot adapt (type, groups, parametrization), or whose LoRA state forbids the change."""


class LoraKeyError(errors.AdapterError):
    """A tensor or parameter name the model does not have."""
