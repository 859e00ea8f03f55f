"""The one exception type for errors a user can fix, and the one for a run asked to stop.

``UserError``: bad input the user can fix (a flag, an id, a file, a damaged dataset, a failed download). Its
message is one line naming the flag or file and the fix; the scripts print it without a traceback and exit
with status 2 (``tracking.stage``, ``tracking.fail``). Every other exception is a bug: its traceback is shown.
The specific errors (``MetadataError``, ``DatasetNotFound``, ``DownloadError``...) derive from it.

``Interrupted``: a stop asked for from outside, by SIGTERM or SIGINT (``stopping.py``); the run is closed as
stopped, not failed, and the process exits with 128 + the signal's number.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; the message is shown as one line, with no traceback."""


class Interrupted(KeyboardInterrupt):
    """A run asked to stop by a signal: SIGTERM (exit status 143) or SIGINT (130). A KeyboardInterrupt, so that
    what already handles Ctrl-C (ours, the libraries') handles SIGTERM the same way, and no ``except Exception``
    on the way mistakes it for a failure."""

    def __init__(self, signal_number: int):
        self.signal_number = signal_number
        super().__init__(signal_name(signal_number))

    @property
    def exit_status(self) -> int:
        return 128 + self.signal_number


def signal_name(signal_number: int) -> str:
    import signal

    try:
        return signal.Signals(signal_number).name
    except ValueError:
        return f"signal {signal_number}"
