"""User-facing errors: one line, no traceback at the CLI, a per-request error in the server."""


class AucuesError(Exception):
    """An error caused by the user's input or environment, shown as one line."""


class NoFaceError(AucuesError):
    """No face was found in an image."""
