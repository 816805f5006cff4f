"""``python -m mailrules`` and the ``mailrules`` command.

Signal handlers come before any other import: until ``cli.main`` installs its own, a
SIGINT or SIGTERM ends the process at once with its exit code (nothing has started yet),
never with a traceback from the middle of an import.
"""

import os
import signal
import sys


def _stop_now(number: int, frame: object) -> None:
    os.write(2, b"mailrules: interrupted\n")
    os._exit(128 + number)


signal.signal(signal.SIGINT, _stop_now)
signal.signal(signal.SIGTERM, _stop_now)


def main() -> int:
    from mailrules.cli import main as cli_main

    code = cli_main()
    # Leave without the interpreter's shutdown: it puts the default handlers back, and a
    # signal arriving then would end the process as killed, not with its exit code.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said anyway
            pass
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
