"""rvclora's error model: one root, one branch for what the user can fix.

- ``RvcloraError``: every error rvclora raises on purpose.
- ``UserError``: bad input or a fixable situation (a file, an option, a device, a missing
  asset). Its message is one line that names the problem and what to do; every entry point
  prints it as ``prog: error: <message>`` and exits 2. Anything else reaching an entry point
  is a bug: exit 1 with "internal error … rerun with --debug".
- One subclass per domain below; packages derive their specific errors from these. Each also
  derives from the builtin it replaced (ValueError, OSError, RuntimeError), so code that
  caught the builtin keeps working.

This package imports nothing of rvclora's: every package may import it.
"""

from __future__ import annotations

EXIT_USER_ERROR = 2  # what an entry point returns for a UserError
EXIT_INTERNAL_ERROR = 1  # for anything else (a bug)


class RvcloraError(Exception):
    """Root of the errors rvclora raises on purpose."""


class UserError(RvcloraError):
    """Something the user can fix; the message is one line saying what and how."""


class UsageError(UserError, ValueError):
    """An option or argument value that cannot be used (out of range, contradictory, unknown name)."""


class FileFormatError(UserError, ValueError):
    """A file that cannot be used: missing, corrupt, hostile or not what it claims."""


class ModelFileError(FileFormatError):
    """A model file (voice, pretrained base, content encoder, pitch model, index) that cannot be used."""


class OutputPathError(UserError, ValueError):
    """An output path that cannot be written (no such folder, not writable, wrong suffix)."""


class OutputExistsError(OutputPathError):
    """The output file exists and the user did not ask to replace it."""


class AssetError(UserError, OSError):
    """A shared model file (content encoder, pitch model, pretrained base) missing or not downloadable."""


class MissingAssetError(AssetError, ValueError):
    """A model file the command needs is not where it was looked for."""


class DeviceError(UserError):
    """A device that cannot be used: the audio devices, or the compute device."""


class AudioDeviceError(DeviceError, OSError):
    """An audio device missing, ambiguous or refusing to open; the sound server unreachable."""


class ComputeDeviceError(DeviceError, ValueError):
    """A compute device (cpu, cuda…) or precision that is not available here."""


class EngineError(UserError, RuntimeError):
    """The live engine cannot do what was asked: not running, its process gone, a command refused."""


class SettingsError(UserError, ValueError):
    """Engine or panel settings out of range or contradictory."""


class AdapterError(UserError, ValueError):
    """A LoRA adapter that cannot be read, or does not fit the voice it is applied to."""


class BackendError(UserError, RuntimeError):
    """An inference backend that cannot run here (e.g. onnxruntime missing, a provider refused)."""


class LibraryError(UserError, ValueError):
    """The voice library refused an operation (unknown voice, name taken, bad bundle or link)."""


class TrainingError(UserError, ValueError):
    """Training refused its input: recordings, resume state, a locked run folder."""


class ExportError(UserError, ValueError):
    """An export that cannot be made from the given voice or options."""


class RvcloraWarning(UserWarning):
    """A warning meant for the user; entry points print it as one line ``prog: warning: …``."""


class AdapterWarning(RvcloraWarning):
    """An adapter applied on the user's word (``force``) although its base cannot be verified."""


__all__ = [
    "EXIT_INTERNAL_ERROR", "EXIT_USER_ERROR",
    "AdapterError", "AdapterWarning", "AssetError", "AudioDeviceError", "BackendError", "ComputeDeviceError",
    "DeviceError", "EngineError", "ExportError", "FileFormatError", "LibraryError", "MissingAssetError", "ModelFileError", "OutputExistsError",
    "OutputPathError", "RvcloraError", "RvcloraWarning", "SettingsError", "TrainingError", "UsageError",
    "UserError",
]
