"""``python -m ditto_core.synthetic DIR``: write the synthetic model kit (see :mod:`ditto_core.testing.kit`).

Kept as a command because scripts call it; the kit itself lives in the test namespace.
"""

from __future__ import annotations

import sys

from .testing.kit import main

if __name__ == "__main__":
    sys.exit(main())
