"""Go Live: publish a graph's models + source to the live page that this pack mounts on ComfyUI's own web server.

At import the pack adds the live routes (:class:`ditto_core.live.server.LiveRoutes`: the page, WebSocket, WebRTC,
uploads, metrics) under ``/ditto/live`` to ComfyUI's server (its route table is read when the server starts, after
the custom nodes load). They serve one :class:`~ditto_core.live.server.LiveHub`, the pack's only live state; the
node puts an avatar into it. ComfyUI's server has no token of its own: the page is as reachable as ComfyUI is
(loopback unless ComfyUI was started with ``--listen``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ditto_core.conditions import EMOTION_LABELS
from ditto_core.validate import OptionError, check_choice, renamed

from .types import CATEGORY_RENDER, DITTO_MODELS, DITTO_SOURCE

log = logging.getLogger("ComfyUI-Ditto")

#: where the live page and its API are mounted on ComfyUI's server
LIVE_PREFIX = "/ditto/live"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _LiveMount:
    """The pack's live routes on ComfyUI's server, registered when the pack loads (the paths only: the hub and its
    handlers are built on first use, so ComfyUI's start-up imports nothing heavy)."""

    def __init__(self) -> None:
        self.mounted = False
        self.error: str | None = None
        self._routes: Any = None

    @property
    def hub(self) -> Any:
        """The pack's :class:`~ditto_core.live.server.LiveHub` (made on first use)."""
        return self.routes().hub

    def uses(self, models: Any) -> bool:
        """True when the live hub (made or not) holds ``models`` (a published avatar or an open session)."""
        return self._routes is not None and self._routes.hub.uses(models)

    def routes(self) -> Any:
        if self._routes is None:
            from ditto_core.live.server import LiveHub, LiveRoutes

            self._routes = LiveRoutes(LiveHub(None))
        return self._routes

    def mount(self) -> None:
        try:
            from server import PromptServer  # ComfyUI's
        except ImportError:
            self.error = "not running inside a ComfyUI server"
            return
        instance = getattr(PromptServer, "instance", None)
        if instance is None or not hasattr(instance, "routes"):
            self.error = "ComfyUI's server is not up"
            return
        from ditto_core.live.routes import add_routes

        def handler(name: str) -> Any:
            async def handle(request: Any) -> Any:
                return await getattr(self.routes(), name)(request)

            handle.__name__ = f"ditto_live_{name}"
            return handle

        add_routes(instance.routes, LIVE_PREFIX, handler)
        self.mounted = True


LIVE = _LiveMount()


class DittoGoLive:
    DESCRIPTION = (
        "Publish this avatar (the models and the registered source) to the live page served by ComfyUI at "
        f"{LIVE_PREFIX}/ (open it in a browser, pick the avatar, press Talk and speak, or play a file). The widgets "
        "here are the defaults of its live sessions; the page can change them. The avatar stays published until "
        "ComfyUI restarts or another Go Live uses the same name. Live generation runs beside ComfyUI's queue on the "
        "same GPU."
    )
    CATEGORY = CATEGORY_RENDER
    FUNCTION = "go_live"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("url_path",)
    OUTPUT_TOOLTIPS = (f"The page's path on this ComfyUI server ({LIVE_PREFIX}/?avatar=<name>).",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        def amp(tip: str) -> tuple[str, dict[str, Any]]:
            return ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05, "tooltip": tip})

        def deg(tip: str) -> tuple[str, dict[str, Any]]:
            return ("FLOAT", {"default": 0.0, "min": -90.0, "max": 90.0, "step": 0.5, "tooltip": tip})

        return {
            "required": {
                "models": (DITTO_MODELS, {"tooltip": "From Load Ditto Models (a GPU makes it real time)."}),
                "source": (DITTO_SOURCE, {"tooltip": "From Extract Source Motion: the face to bring to life."}),
                "name": ("STRING", {"default": "comfyui", "tooltip": "The avatar's id on the live page: letters, "
                                    "digits, - and _ (up to 64). The same name replaces the earlier avatar."}),
                "emotion": (list(EMOTION_LABELS), {"default": "Neutral",
                                                   "tooltip": "The emotion condition of the live DiT."}),
                "mouth": amp("Lip motion amplitude (1 = as generated)."),
                "head": amp("Head motion amplitude (1 = as generated, 0 = a still head)."),
                "pitch": deg("Head pitch offset in degrees (nod)."),
                "yaw": deg("Head yaw offset in degrees (turn)."),
                "roll": deg("Head roll offset in degrees (tilt)."),
                "output": (["full", "crop"], {"default": "full", "tooltip": "full: the face pasted back into the "
                                              "portrait (official); crop: the 512x512 face crop (cheaper)."}),
            },
        }

    def go_live(self, models: Any, source: Any, name: str, emotion: str, mouth: float, head: float, pitch: float,
                yaw: float, roll: float, output: str) -> dict[str, Any]:
        from ditto_core.live.avatars import Avatar
        from ditto_core.live.settings import LiveSettings

        if not isinstance(name, str) or not _NAME.match(name):
            raise OptionError("name", "1 to 64 letters, digits, - or _", name)
        check_choice("emotion", emotion, EMOTION_LABELS)
        settings = {"emotion": emotion, "mouth": mouth, "head": head, "pitch": pitch, "yaw": yaw, "roll": roll,
                    "output": output}
        with renamed({f"LiveSettings.{k}": k for k in settings}):
            LiveSettings(**settings)  # refused here, with the widget's name, not on the page later
        if not LIVE.mounted:
            raise RuntimeError(f"Go Live needs ComfyUI's web server ({LIVE.error or 'not mounted'})")
        LIVE.hub.publish(Avatar.from_source(name, source, name=name, models=models, settings=settings), models)
        path = f"{LIVE_PREFIX}/?avatar={name}"
        log.info("ComfyUI-Ditto: avatar %r is live at %s", name, path)
        return {"ui": {"text": [path]}, "result": (path,)}


NODE_CLASS_MAPPINGS = {"DittoGoLive": DittoGoLive}
NODE_DISPLAY_NAME_MAPPINGS = {"DittoGoLive": "Go Live (Ditto)"}
