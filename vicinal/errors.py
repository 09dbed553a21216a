"""The one exception type the command line turns into a clean message (no traceback)."""


class VicinalError(Exception):
    """A user-facing error: the message says what went wrong and what to do about it."""
