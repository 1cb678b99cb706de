"""ComfyUI progress bar + interrupt adapter for ditto_core's ``progress(done, total)`` / ``cancel()`` callbacks.

ComfyUI modules are imported lazily, so the pack imports (and its tests run) without ComfyUI. The progress bar is
only touched from the thread that built the adapter (ComfyUI's executing thread: the bar finds its node through a
context variable); calls from other threads are ignored. ``cancel`` raises ComfyUI's
``InterruptProcessingException`` when the user pressed Cancel; so does the progress bar's own hook.
"""

from __future__ import annotations

import threading
from typing import Any, Callable


def _comfy_utils() -> Any:
    try:
        import comfy.utils

        return comfy.utils
    except ImportError:
        return None


def _model_management() -> Any:
    try:
        import comfy.model_management

        return comfy.model_management
    except ImportError:
        return None


class ComfyProgress:
    """Bind ditto_core callbacks to one ``comfy.utils.ProgressBar``.

    ``progress(done, total)`` moves the bar (re-created when ``total`` changes, e.g. between stages);
    ``cancel()`` checks ComfyUI's interrupt flag. Pass ``total`` to show an empty bar right away.
    """

    def __init__(self, total: int | None = None) -> None:
        self._thread = threading.get_ident()
        self._bar: Any = None
        self._total: int | None = None
        self.updates = 0
        if total:
            self._ensure(int(total))

    def _ensure(self, total: int) -> Any:
        if self._bar is None or total != self._total:
            utils = _comfy_utils()
            if utils is None or not hasattr(utils, "ProgressBar"):
                return None
            self._bar = utils.ProgressBar(total)
            self._total = total
        return self._bar

    def progress(self, done: int, total: int) -> None:
        """ditto_core progress callback: ``done`` of ``total`` units finished."""
        if threading.get_ident() != self._thread:
            return
        total = max(int(total), 1)
        bar = self._ensure(total)
        self.updates += 1
        if bar is not None:
            bar.update_absolute(max(0, min(int(done), total)), total)

    def cancel(self) -> None:
        """ditto_core cancel callback: raise ComfyUI's interrupt exception if the user cancelled."""
        mm = _model_management()
        if mm is not None and hasattr(mm, "throw_exception_if_processing_interrupted"):
            mm.throw_exception_if_processing_interrupted()

    def callbacks(self) -> tuple[Callable[[int, int], None], Callable[[], None]]:
        return self.progress, self.cancel
