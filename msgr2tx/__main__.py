"""
``python -m msgr2tx`` and the ``msgr2tx`` console script.

Ctrl-C is caught from the first moment: the SIGINT handler is installed
before the command line module (and what it imports) loads, and what it
records is handed to L{msgr2tx.cli}, which ends the run as interrupted
(exit 130, one line) instead of showing a KeyboardInterrupt traceback.
"""

import signal
import sys

_early: list = []


def run() -> int:
    """Run the command line; the exit code (L{msgr2tx.cli.main})."""
    try:
        signal.signal(signal.SIGINT, lambda signum, frame: _early.append(True))
    except ValueError:
        pass  # not the main thread
    from msgr2tx import cli
    # one list for both handlers: a Ctrl-C before cli.main installs its own is kept
    cli._EARLY_INTERRUPT = _early
    return cli.main()


if __name__ == "__main__":
    sys.exit(run())
