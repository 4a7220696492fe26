"""The one exception type for bad user input.

Anything a user can get wrong (a family name, a task value, a reward delay, a path) raises
:class:`MCATError` with a one-line message; the command line prints it and exits non-zero
without a traceback.
"""


class MCATError(ValueError):
    """Invalid input from the user, with a one-line explanation."""
