"""Exceptions a user can cause. The UI shows their message, never a traceback."""


class OcvisError(Exception):
    """Base class of every error ocvis raises on purpose."""


class DataError(OcvisError, ValueError):
    """Bad dataset name, class, folder, image file or protocol parameter."""


class TrainingError(OcvisError, RuntimeError):
    """Training could not go on (e.g. the loss became NaN / inf)."""


class Cancelled(OcvisError):
    """A job was cancelled by the user between two steps."""


class OcvisWarning(UserWarning):
    """Something the user should know that does not stop the work."""
