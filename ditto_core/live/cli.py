"""``python -m ditto_core serve``: the live server on one process (models loaded once, many sessions)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from ..errors import DittoError
from ..layout import default_models_dir
from ..validate import check_int
from ..render.renderer import PRECISIONS

__all__ = ["add_serve_command"]


def add_serve_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="the live server: a web page, WebSocket and WebRTC sessions (loopback by default)",
        description="Load the models once and serve live talking-head sessions: the page at http://HOST:PORT/, the "
        "WebSocket protocol at /ws, WebRTC at /offer, Prometheus metrics at /metrics (docs/live-protocol.md). Stop "
        "it with Ctrl-C or SIGTERM.",
    )
    p.add_argument("--models", help="models folder (default $DITTO_MODELS_DIR or ~/.cache/ditto/ditto-talkinghead)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only; "
                   "another address serves the network: set a token)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port, printed)")
    p.add_argument("--token", help="access token every request must carry (Authorization: Bearer <token> or "
                   "?token=<token>); default $DITTO_LIVE_TOKEN; none = no token asked for")
    p.add_argument("--avatar", action="append", default=[], metavar="FILE",
                   help="register this portrait or short video at start (repeatable); its id is printed")
    p.add_argument("--max-sessions", type=int, default=4, help="sessions at once (default 4); more get a 'busy' error")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest avatar upload in MB (default 50)")
    p.add_argument("--max-avatars", type=int, default=16, help="registered avatars kept (default 16, least recently "
                   "used dropped)")
    p.add_argument("--device", default="auto", help="auto, cuda, cuda:N, cpu or mps")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="renderer precision (fp16 on a GPU)")
    p.add_argument("--no-download", action="store_true", help="never download; fail listing the missing files")
    p.add_argument("--no-webrtc", action="store_true", help="do not offer WebRTC (POST /offer answers 501)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise DittoError("serve needs the aiohttp package: pip install 'comfyui-ditto[live]'") from None
    from ..runtime import DittoModels
    from .server import TOKEN_ENV, LiveHub, ServerLimits, is_loopback

    check_int("--port", args.port, 0, 65535)  # before the models load
    token = args.token or os.environ.get(TOKEN_ENV) or None
    limits = ServerLimits(max_sessions=args.max_sessions, max_upload_mb=args.max_upload_mb,
                          max_avatars=args.max_avatars)
    for path in args.avatar:
        if not Path(path).is_file():
            raise DittoError(f"--avatar {path!r}: no such file")
    if not is_loopback(args.host) and token is None:
        print(f"ditto serve: WARNING: listening on {args.host} with no token: anyone who can reach this port can "
              f"use the server; set --token or ${TOKEN_ENV}", file=sys.stderr)
    models_dir = Path(args.models) if args.models else default_models_dir()
    models = DittoModels.load(models_dir, args.device, args.precision, download=not args.no_download,
                              progress=False)
    hub = LiveHub(models, limits)
    for path in args.avatar:
        avatar, _ = hub.register_avatar(Path(path).read_bytes(), Path(path).name)
        print(f"avatar {avatar.id}: {path} ({avatar.kind}, {avatar.width}x{avatar.height})", flush=True)
    asyncio.run(_serve(hub, args.host, args.port, token, webrtc=not args.no_webrtc))
    return 0


async def _serve(hub, host: str, port: int, token: str | None, webrtc: bool) -> None:
    from aiohttp import web

    from .server import create_app

    app = create_app(hub, token=token, webrtc=webrtc)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except (OSError, OverflowError) as e:
        await runner.cleanup()
        raise DittoError(f"--host {host} --port {port}: cannot listen there ({getattr(e, 'strerror', None) or e})") from None
    bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port  # type: ignore[union-attr]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving on http://{shown}:{bound}/" + (" (token required)" if token else ""), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
                pass
    try:
        await stop.wait()
    finally:
        print("stopping: closing sessions", flush=True)
        await runner.cleanup()
