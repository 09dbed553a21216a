"""The exceptions the command line turns into one clean message (no traceback) and an exit code."""


class VicinalError(Exception):
    """A user-facing error: the message says what went wrong and what to do about it.

    Exit code 2: the input was wrong (a name, a setting, a file's content); fix it and run again.
    """

    exit_code = 2


class ResourceError(VicinalError):
    """A fault of the environment rather than the input (disk full, a folder that cannot be written):
    exit code 1. Whatever was finished before it is kept."""

    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, carrying what was kept and how to resume, raised where that is known (``vicinal corrupt``
    knows which corruptions are finished). A KeyboardInterrupt, so every handler that stops work on
    Ctrl-C stops here too; the command line prints its message and exits with 130."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
