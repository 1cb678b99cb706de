"""Go Live (Ditto): the pack mounts the live routes on ComfyUI's server at import, and the node publishes a graph's
models + source (with its widgets as the sessions' defaults) to them. ComfyUI's server is its route table (the stub's
``PromptServer.instance.routes``) served by a real aiohttp application on 127.0.0.1, as ComfyUI serves it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiohttp")

from comfy_stubs import stubbed_pack  # noqa: E402
from conftest import face_image, standin_renderer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    yield from stubbed_pack(tmp_path_factory.mktemp("comfy"))


def test_routes_are_on_comfyuis_server_and_import_nothing_heavy(pack):
    mod, _ = pack
    routes = sys.modules["server"].PromptServer.instance.routes
    paths = {(r.method, r.path) for r in routes}
    for method, path in (("GET", "/ditto/live/"), ("GET", "/ditto/live"), ("GET", "/ditto/live/ws"),
                         ("POST", "/ditto/live/avatars"), ("POST", "/ditto/live/offer"), ("GET", "/ditto/live/metrics")):
        assert (method, path) in paths
    live = sys.modules["ComfyUI-Ditto.nodes.live"].LIVE
    assert live.mounted and live._routes is None  # the hub is made on first use


def test_go_live_publishes_the_avatar_with_its_settings(pack, synthetic_models):
    from aiohttp import web

    from ditto_core.live.client import LiveClient
    from ditto_core.runtime import extract_source

    mod, _ = pack
    node = mod.NODE_CLASS_MAPPINGS["DittoGoLive"]()
    source = extract_source(synthetic_models, face_image(), is_image=True)
    with pytest.raises(ValueError, match="^name must be 1 to 64 letters"):
        node.go_live(synthetic_models, source, "my avatar", "Happy", 1.0, 1.0, 0.0, 0.0, 0.0, "crop")
    with pytest.raises(ValueError, match="^mouth must be"):
        node.go_live(synthetic_models, source, "anna", "Happy", -1.0, 1.0, 0.0, 0.0, 0.0, "crop")
    out = node.go_live(synthetic_models, source, "anna", "Happy", 0.5, 1.0, 0.0, 12.0, 0.0, "crop")
    assert out["result"] == ("/ditto/live/?avatar=anna",) and out["ui"]["text"] == ["/ditto/live/?avatar=anna"]
    live = sys.modules["ComfyUI-Ditto.nodes.live"].LIVE
    live.hub.renderer_factory = standin_renderer  # warp + decode: seconds per frame here

    async def go():
        app = web.Application()
        app.add_routes(sys.modules["server"].PromptServer.instance.routes)  # as ComfyUI's server does at start
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with LiveClient(f"http://127.0.0.1:{port}/ditto/live") as c:
                page = await c.http.get(f"http://127.0.0.1:{port}/ditto/live/")
                assert page.status == 200 and "<html" in (await page.text()).lower()
                avatars = await c.avatars()
                # uploads on ComfyUI's page are registered with the published avatar's models
                uploaded = await c.upload_avatar(ROOT / "example_inputs" / "ditto_portrait.jpg")
                assert uploaded["kind"] == "image" and not uploaded["cached"]
                async with c.session("anna", {"idle": False, "steps": 2}) as conn:
                    await conn.push(np.zeros(3200, np.float32))
                    await conn.end()
                    frames = [f async for f in conn.events() if not isinstance(f, dict)]
                return avatars, conn.ready, frames
        finally:
            await runner.cleanup()

    avatars, ready, frames = asyncio.run(asyncio.wait_for(go(), 180))
    assert [a["id"] for a in avatars] == ["anna"] and avatars[0]["settings"]["emotion"] == "Happy"
    # the node's widgets are the session's defaults; the client's own settings override them
    assert ready["settings"]["output"] == "crop" and ready["settings"]["yaw"] == 12.0
    assert ready["settings"]["mouth"] == 0.5 and ready["settings"]["idle"] is False
    assert [f.index for f in frames] == list(range(5)) and frames[0].header["width"] == 512


def test_load_models_keeps_the_models_a_live_avatar_uses(pack):
    """Load Ditto Models frees its cached models when its inputs change, except models Go Live published (a live
    session may be running on them)."""
    from ditto_core.live.avatars import Avatar

    mod, _ = pack
    live = sys.modules["ComfyUI-Ditto.nodes.live"].LIVE

    class Models:
        def __init__(self) -> None:
            self.freed = 0

        def release_memory(self) -> None:
            self.freed += 1

    used, unused = Models(), Models()
    live.hub.avatars.put(Avatar("held", None, "image", 1, 512, 512, "held", used))  # type: ignore[arg-type]
    loader = mod.NODE_CLASS_MAPPINGS["DittoLoadModels"]()
    loader._models, loader._key = used, ("a",)
    loader.release()
    assert used.freed == 0 and loader._models is None and live.uses(used)
    loader._models, loader._key = unused, ("b",)
    loader.release()
    assert unused.freed == 1 and not live.uses(unused)
