"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class ZeroSegError(Exception):
    """A problem with the user's input: a path, an image, a class list, a checkpoint or a config.

    The message is a single line that names the offending thing; ``zeroseg`` prints it and exits 2.
    """
