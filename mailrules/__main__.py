"""``python -m mailrules`` and the ``mailrules`` command.

Signal handlers come before any other import: until ``cli.main`` installs its own, a
SIGINT or SIGTERM ends the process at once with its exit code (nothing has started yet),
never with a traceback from the middle of an import.
"""

import os
import signal


def _stop_now(number: int, frame: object) -> None:
    os.write(2, b"mailrules: interrupted\n")
    os._exit(128 + number)


signal.signal(signal.SIGINT, _stop_now)
signal.signal(signal.SIGTERM, _stop_now)


def main() -> int:
    from mailrules.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
