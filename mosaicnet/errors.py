"""Exception types that carry a message written for the user.

Every error raised on bad input derives from :class:`MosaicnetError` so the
command line can print it as one clear line instead of a traceback.
"""


class MosaicnetError(Exception):
    """Base class: bad input or state that the user can fix; the message says how."""


class DataFormatError(MosaicnetError, ValueError):
    """A dataset file is missing, unreadable or not in the expected layout."""


class ConfigError(MosaicnetError, ValueError):
    """A parameter or option has an invalid value."""


class RunDirectoryError(MosaicnetError):
    """A run or output directory cannot be used as asked (exists, corrupt, missing)."""


class BackendUnavailableError(MosaicnetError, RuntimeError):
    """A simulation backend was requested that is not installed or cannot run here."""


class TrainingDiverged(MosaicnetError, RuntimeError):
    """Meta-training stopped because its loss diverged; the message says what was kept."""
