"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class ZeroSegError(Exception):
    """A problem with the user's input: a path, an image, a class list, a checkpoint or a config.

    The message is a single line that names the offending thing; ``zeroseg`` prints it and exits 2.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty), for
    wrapping a library's multi-line error into a one-line ``ZeroSegError``."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def error_line(error: Exception) -> str:
    """The one line to show for a ``ZeroSegError``; for one raised in a DataLoader worker (which
    the DataLoader re-raises with the worker's traceback as its message), the worker's own line."""
    text = str(error)
    if not text.startswith("Caught ZeroSegError in DataLoader worker"):
        return text
    last = text.strip().splitlines()[-1]
    return last.split("ZeroSegError: ", 1)[-1]
