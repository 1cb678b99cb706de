"""The live server for tests: ``python -m ditto_core serve``'s own code, with the renderer optionally replaced by the
benchmarks' shape-identical stand-in (warp + decode take seconds per frame on a CPU; the session, transport and page
are what these tests check).

    python tests/live_server.py --models KIT [--standin] [serve's other flags]

Prints ``serving on http://127.0.0.1:PORT/`` when it listens (``--port 0`` picks a free port). It exits by itself
when the process that started it is gone (a killed test run leaves no server behind).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's ditto_core, whatever is installed


def _exit_with_parent() -> None:
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str]) -> int:
    _exit_with_parent()
    standin = "--standin" in argv
    argv = [a for a in argv if a != "--standin"]
    if standin:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import bench

        from ditto_core.live import server

        original = server.LiveHub.__init__

        def init(self, models, limits=None, renderer_factory=None):
            original(self, models, limits, renderer_factory or (lambda m: bench.StandinRenderer(m.device, 4)))

        server.LiveHub.__init__ = init  # type: ignore[method-assign]
    from ditto_core.__main__ import main as ditto_main

    return ditto_main(["serve", "--no-download", *argv])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
