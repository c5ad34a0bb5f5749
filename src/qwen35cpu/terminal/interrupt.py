"""Ctrl-C during an answer: the first one stops the answer, a second one interrupts for good."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any


class StopFlag:
    """While active, the first Ctrl-C only asks the running answer to stop (the generation loop
    checks between tokens, so the model state stays consistent); a second one raises as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def __enter__(self) -> StopFlag:
        self.requested = False
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._old)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
