"""SIGINT and SIGTERM: a run ends within moments, says so, and leaves nothing half-held.

The first signal cuts every open server connection (so no thread stays blocked on a
server that doesn't answer) and raises ``Signalled`` in the main thread, wherever it is.
The journal already makes any moment safe to stop at — it is what a SIGKILL relies on —
so the command in flight is abandoned rather than waited for; the ``finally`` blocks on
the way out mark the run interrupted and release the locks.  A second signal during that
clean-up ends the process at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from mailrules.errors import Signalled

HANDLED = (signal.SIGINT, signal.SIGTERM)
DEFER_SECONDS = 0.005
Hook = Callable[[], None]

_hooks: dict[int, Hook] = {}
_received: list[int] = []
_shield = {"depth": 0, "pending": 0, "deferred": 0}
_previous_unraisable = {"hook": sys.unraisablehook}


def on_interrupt(hook: Hook) -> Callable[[], None]:
    """Call ``hook`` (cut a connection, say) when a signal arrives; returns its removal."""
    key = id(hook)
    _hooks[key] = hook
    return lambda: _hooks.pop(key, None) and None


@contextmanager
def handled() -> Iterator[None]:
    """Handle SIGINT and SIGTERM for the ``with`` block, then put the previous handlers back.

    Only the main thread can set handlers; elsewhere (a test running the command in a
    thread) the block runs with whatever handlers the process has.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in (*HANDLED, signal.SIGALRM)}
    _received.clear()
    _shield.update(depth=0, pending=0, deferred=0)
    for number in HANDLED:
        signal.signal(number, _handler)
    signal.signal(signal.SIGALRM, _deferred)
    _previous_unraisable["hook"], sys.unraisablehook = sys.unraisablehook, _unraisable
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)  # a raise still waiting has nothing left to stop
        sys.unraisablehook = _previous_unraisable["hook"]
        for number, handler in previous.items():
            signal.signal(number, handler)
        _received.clear()


@contextmanager
def shielded() -> Iterator[None]:
    """Let a short step finish before a signal takes effect: a journal write together with
    the bookkeeping that says which run it belongs to.  The signal still cuts the server
    connections at once; only the ``Signalled`` waits for the end of the block."""
    _shield["depth"] += 1
    try:
        yield
    finally:
        _shield["depth"] -= 1
        pending, _shield["pending"] = _shield["pending"], 0
        if pending and _shield["depth"] == 0:
            raise Signalled(pending)


def _handler(number: int, frame: FrameType | None) -> None:
    if _received:
        os.write(2, b"mailrules: interrupted again; stopping now\n")
        os._exit(128 + number)
    _received.append(number)
    for hook in list(_hooks.values()):
        try:
            hook()
        except Exception:  # a connection that is already gone needs no cutting
            pass
    if _shield["depth"]:
        _shield["pending"] = number
        return
    raise Signalled(number)


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """A ``Signalled`` raised inside a finalizer or weakref callback (importlib's module locks,
    a ``__del__``) is printed as "Exception ignored" and dropped: raise it again moments later,
    where it can end the command."""
    if isinstance(unraisable.exc_value, Signalled):
        _shield["deferred"] = unraisable.exc_value.signal_number
        signal.setitimer(signal.ITIMER_REAL, DEFER_SECONDS)
        return
    _previous_unraisable["hook"](unraisable)


def _deferred(_alarm: int, _frame: FrameType | None) -> None:
    number, _shield["deferred"] = _shield["deferred"], 0
    if number:
        raise Signalled(number)
