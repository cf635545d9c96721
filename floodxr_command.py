"""The ``floodxr`` console script.

It lives outside the ``floodxr`` package on purpose: importing the package (numpy, xarray,
dask, torch ...) takes seconds, and an entry point inside it could not catch a Ctrl-C that
arrives during those imports. Here an interrupt at any moment ends the command with one line
and status 130, as :func:`floodxr.cli.main` does once it runs.
"""

from __future__ import annotations

import signal
import sys


def main() -> int:
    """Run ``floodxr`` with ``sys.argv``; returns the exit status."""
    try:
        from floodxr.cli import main as run

        status = run()
    except KeyboardInterrupt:
        command = " ".join(["floodxr", *sys.argv[1:2]]).strip()
        print(f"{command}: interrupted; outputs already written are whole", file=sys.stderr)
        return 130
    # the work is done and its files are written: a Ctrl-C while the interpreter shuts down
    # (thread pools and clusters closing) interrupts nothing any more
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return status
