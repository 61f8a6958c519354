"""The central station's server: Starlette on uvicorn, on its own thread and event loop in
the monitor's process, reading a ``StationState``. The routes and what it guarantees (per-client
bounded queues, the token, no traceback for anything a client sends): docs/station.md (How it
is built, Security) and docs/threat-model.md (Browsers); the checks before any route:
``access.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from importlib import resources
from typing import Any

from mrm_edge.runtime.web.access import COOKIE, SECURITY_HEADERS, Access, refuse
from mrm_edge.runtime.web.config import WebConfig
from mrm_edge.runtime.web.decimate import DISPLAY_HZ
from mrm_edge.runtime.web.state import StationState

from mrm_edge.data.dataset import LEADS

log = logging.getLogger(__name__)

TICK_HZ = 10
CLIENT_QUEUE = 32
"""Frames a client may fall behind (3.2 s at 10 Hz) before it loses them and resyncs."""
SEND_BUFFER = 64 * 1024
"""Kernel send buffer per connection (set on the listening socket, inherited by each
accepted one): without it Linux grows a stuck client's buffer to megabytes before the
server sees it as slow; with it, what a stuck browser can hold is bounded and small."""
_STATIC = ("index.html", "app.js", "style.css")
_SNAPSHOT_SECONDS = 6  # strip history a (re)connecting client gets
_MAX_ID_DIGITS = 12  # alarm ids count up from 1: anything longer is no alarm of ours


def _asset(name: str) -> bytes:
    return resources.files("mrm_edge.runtime.web").joinpath("static", name).read_bytes()


class _Client:
    """One browser connection: its queue, lead and counters."""

    def __init__(self, cid: int, lead: str) -> None:
        self.id = cid
        self.lead = lead
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(CLIENT_QUEUE)
        self.sent = 0
        self.missed = 0
        self.resyncs = 0
        self.needs_snapshot = True
        self.wake = asyncio.Event()

    def stats(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lead": self.lead,
            "sent": self.sent,
            "missed": self.missed,
            "resyncs": self.resyncs,
            "queued": self.queue.qsize(),
        }


class StationServer:
    """Serve ``state`` at ``config`` from a thread of its own (``start`` / ``stop``).
    The socket is bound in the constructor, so a port in use fails before the run."""

    def __init__(self, state: StationState, config: WebConfig) -> None:
        try:
            import uvicorn  # noqa: F401
            from starlette.applications import Starlette  # noqa: F401
        except ImportError:
            raise ValueError(
                "the web view needs starlette and uvicorn: pip install 'mrm-edge[web]'"
            ) from None
        config.check()
        self.state = state
        self.config = config
        self.access = Access(config)
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        try:
            self.sock.bind((config.host, config.port))
        except OSError as e:
            self.sock.close()
            raise ValueError(
                f"--web {config.host}:{config.port}: cannot bind ({e.strerror})"
            ) from None
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.clients: dict[int, _Client] = {}
        self._next_client = 1
        self._seq = 0
        self._cursor: dict[str, int] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    # ------------------------------------------------------------------ lifetime

    def start(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self._app(),
            # Errors only: a client's malformed request is its problem, not a line on the
            # monitor's terminal (uvicorn warns about each one).
            log_level="error",
            access_log=False,  # URLs may carry the token: never logged
            lifespan="off",
            ws="websockets-sansio",
            # A browser that vanished without closing is dropped after a missed ping; a
            # slow one has time to catch up (its missed frames are counted meanwhile).
            ws_ping_interval=10.0,
            ws_ping_timeout=30.0,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="web-station", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        tick = asyncio.create_task(self._broadcast())
        self._ready.set()
        try:
            await self._server.serve(sockets=[self.sock])
        finally:
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10.0)
        with contextlib.suppress(OSError):
            self.sock.close()

    # ------------------------------------------------------------------ access

    def _guard(self, app: Any) -> Any:
        """ASGI middleware: ``Access`` refuses (421/403/401/413) before any route; every
        HTTP response gets the security headers; an unforeseen exception is one log line."""

        async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] not in ("http", "websocket"):
                return await app(scope, receive, send)
            started = False

            async def send_secured(message: dict[str, Any]) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    message = {
                        **message,
                        "headers": [*message.get("headers", ()), *SECURITY_HEADERS],
                    }
                await send(message)

            try:
                why = self.access.refusal(scope)
                if why is not None:
                    await refuse(scope, send_secured, *why)
                else:
                    await app(scope, receive, send_secured)
            except Exception as e:  # a bug of ours: one line, no details for the client
                log.error("central station: %s %s: %s", scope.get("method", "WS"),
                          scope.get("path", "")[:80], type(e).__name__)  # fmt: skip
                if scope["type"] == "http" and not started:
                    await refuse(scope, send_secured, 500, "internal error")

        return guarded

    # ------------------------------------------------------------------ routes

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, RedirectResponse, Response
        from starlette.routing import Route, WebSocketRoute

        types = {"html": "text/html", "js": "text/javascript", "css": "text/css"}

        async def page(request: Any) -> Any:
            if self.config.token and request.query_params.get("token"):
                # Keep the token out of the address bar and history: a cookie from now on.
                resp = RedirectResponse("/", status_code=303)
                resp.set_cookie(COOKIE, self.config.token, httponly=True, samesite="strict")
                return resp
            return Response(_asset("index.html"), media_type="text/html")

        async def static(request: Any) -> Any:
            name = request.path_params["name"]
            if name not in _STATIC:
                return Response(b"not found\n", status_code=404)
            return Response(_asset(name), media_type=types[name.rsplit(".", 1)[1]])

        async def state(request: Any) -> Any:
            return JSONResponse(self._snapshot(request.query_params.get("lead", "II")))

        async def bed(request: Any) -> Any:
            doc = self.state.twelve_lead(request.path_params["bed"])
            if doc is None:
                return JSONResponse({"error": "no such bed"}, status_code=404)
            return JSONResponse(doc)

        async def ack(request: Any) -> Any:
            raw = request.path_params["alarm"]
            if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_ID_DIGITS):
                return JSONResponse({"error": "alarm id must be a whole number"}, 400)
            if not self.state.acknowledge(int(raw)):
                return JSONResponse({"error": "no such alarm"}, 404)
            return JSONResponse({"ok": True})

        async def clients(request: Any) -> Any:
            return JSONResponse([c.stats() for c in self.clients.values()])

        app = Starlette(
            routes=[
                Route("/", page),
                Route("/static/{name}", static),
                Route("/api/state", state),
                Route("/api/bed/{bed:path}", bed),
                Route("/api/alarms/{alarm}/ack", ack, methods=["POST"]),
                Route("/api/clients", clients),
                WebSocketRoute("/ws", self._socket),
            ]
        )
        return self._guard(app)

    # ------------------------------------------------------------------ frames

    def _snapshot(self, lead: str) -> dict[str, Any]:
        """Everything a client needs to draw from scratch, at the last tick's cursor."""
        li = LEADS.index(lead) if lead in LEADS else 1
        until = dict(self._cursor) or self.state.cursors()
        since = {sid: n - _SNAPSHOT_SECONDS * DISPLAY_HZ for sid, n in until.items()}
        version, alarms = self.state.alarm_list()
        return {
            "type": "snapshot",
            "seq": self._seq,
            "lead": LEADS[li],
            "header": self._header(),
            "beds": self.state.beds_summary(),
            "strips": self.state.strips(since, until, li),
            "alarms": alarms,
            "alarm_version": version,
        }

    def _header(self) -> dict[str, Any]:
        head = self.state.header()
        head["clients"] = len(self.clients)
        head["clients_missed"] = sum(c.missed for c in self.clients.values())
        return head

    async def _broadcast(self) -> None:
        last_version = -1
        last_beds: dict[str, Any] = {}
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            # A fixed rate, not "sleep after the work": the page gets TICK_HZ frames a second
            # however long a tick takes (a tick more than a period late is skipped).
            due += 1.0 / TICK_HZ
            now = loop.time()
            if due < now - 1.0 / TICK_HZ:
                due = now
            await asyncio.sleep(max(0.0, due - now))
            until = self.state.cursors()
            since, self._cursor = self._cursor, until
            self._seq += 1
            version, alarms = self.state.alarm_list()
            beds = self.state.beds_summary()
            changed = {sid: b for sid, b in beds.items() if last_beds.get(sid) != b}
            last_beds = beds  # a frame carries only the beds that changed since the last
            base: dict[str, Any] = {
                "type": "frame",
                "seq": self._seq,
                "header": self._header(),
                "beds": changed,
            }
            if version != last_version:
                base["alarms"], base["alarm_version"] = alarms, version
                last_version = version
            frames: dict[str, str] = {}
            for client in list(self.clients.values()):
                if client.lead not in frames:
                    li = LEADS.index(client.lead)
                    doc = {
                        **base,
                        "lead": client.lead,
                        "strips": self.state.strips(since, until, li),
                    }
                    frames[client.lead] = json.dumps(doc, separators=(",", ":"))
                if client.needs_snapshot:
                    continue  # its sender sends a snapshot first, which includes this tick
                try:
                    client.queue.put_nowait((self._seq, frames[client.lead]))
                except asyncio.QueueFull:
                    # A slow or stuck client: its backlog is worthless, a snapshot replaces it.
                    client.missed += client.queue.qsize() + 1
                    while not client.queue.empty():
                        client.queue.get_nowait()
                    client.needs_snapshot = True
                    client.resyncs += 1
                    client.wake.set()

    async def _socket(self, ws: Any) -> None:
        from starlette.websockets import WebSocketDisconnect

        lead = ws.query_params.get("lead", "II")
        client = _Client(self._next_client, lead if lead in LEADS else "II")
        self._next_client += 1
        await ws.accept()
        self.clients[client.id] = client
        reader = asyncio.create_task(self._read(ws, client))
        try:
            while not reader.done():
                if client.needs_snapshot:
                    client.needs_snapshot = False
                    snap = self._snapshot(client.lead)
                    snap["client"] = client.stats()
                    await ws.send_text(json.dumps(snap, separators=(",", ":")))
                    client.sent += 1
                    floor = snap["seq"]
                    while not client.queue.empty():  # frames the snapshot already covers
                        if client.queue._queue[0][0] > floor:  # type: ignore[attr-defined]
                            break
                        client.queue.get_nowait()
                    continue
                client.wake.clear()
                get = asyncio.create_task(client.queue.get())
                woke = asyncio.create_task(client.wake.wait())
                done, pending = await asyncio.wait(
                    {get, woke, reader}, return_when=asyncio.FIRST_COMPLETED
                )
                for t in pending - {reader}:
                    t.cancel()
                if get in done and not client.needs_snapshot:
                    await ws.send_text(get.result()[1])
                    client.sent += 1
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            self.clients.pop(client.id, None)
            reader.cancel()

    async def _read(self, ws: Any, client: _Client) -> None:
        """Messages from the page: {"lead": "V1"} switches the strip lead (with a snapshot)."""
        with contextlib.suppress(Exception):
            while True:
                msg = json.loads(await ws.receive_text())
                lead = msg.get("lead") if isinstance(msg, dict) else None
                if lead in LEADS and lead != client.lead:
                    client.lead = lead
                    client.needs_snapshot = True
                    client.wake.set()
