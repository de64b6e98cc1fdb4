"""The one base class of expected failures: the CLI prints their message, not a traceback."""


class LongvieError(RuntimeError):
    """A failure the user can act on; the message names the file, key or step and the reason."""
