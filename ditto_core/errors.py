"""The library's error classes: every refusal of a bad input, file or setting is a :class:`DittoError`.

The message of a ``DittoError`` names the input as the caller knows it (a file path, ``--seed``, the ``guidance``
widget, ``fps`` in a motion file) and what was expected. The command line prints it as one ``ditto: error:`` line
and exits with code 2; the ComfyUI nodes show it as the node's error. Classes that existed before keep their old
base classes too (``AudioError`` is still a ``ValueError``, ``OnnxModelError`` a ``RuntimeError``).
"""

from __future__ import annotations

__all__ = ["DittoError", "InputError"]


class DittoError(Exception):
    """A bad input, file, model or setting, refused with a message that names it."""


class InputError(DittoError, ValueError):
    """A value or file given by the caller that is refused (wrong type, out of range, unreadable, too large)."""
