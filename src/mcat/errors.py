"""The one exception type for bad user input.

Anything a user can get wrong (a family name, a task value, a reward delay, a path) raises
:class:`MCATError` with a one-line message; the command line prints it and exits non-zero
without a traceback.
"""


class MCATError(ValueError):
    """Invalid input from the user, with a one-line explanation."""

    exit_code = 2  # the command line's exit status for it


class RunDirBusy(MCATError):
    """An output directory another process is writing; the command line exits with 75
    (EX_TEMPFAIL: try again later), so scripts can tell it from bad input (2)."""

    exit_code = 75


class RunStopped(MCATError):
    """A run stopped on request (SIGTERM, Ctrl-C) after writing a checkpoint of the step it
    reached; the command line exits with 128 + the signal's number, as a process the signal
    ended would, so schedulers and scripts see it did not finish."""

    def __init__(self, signum: int, at: str, out: object):
        import signal

        self.exit_code = 128 + signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} at {at} with a checkpoint of that step; "
            f"the same command continues it ({out})"
        )
