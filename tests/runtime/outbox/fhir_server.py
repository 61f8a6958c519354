"""A FHIR R4 endpoint on loopback for the tests: a real HTTP(S) server (http.server, a thread
per request) that validates every request body with ``fhir.resources`` (R4B), processes a
transaction Bundle with conditional create by identifier (``ifNoneExist``) the way a FHIR
server does (an entry whose identifier exists creates nothing; references to its fullUrl
point at the existing resource), and misbehaves on cue: ``faults`` is a list of what the
next requests get (``"500"``, ``"503"``, ``"429"``, ``"slow"``: no answer within the
client's timeout, before the Bundle is processed, ``"lost"``: processed, then no answer
in time (a lost response), ``"drip"``: an answer a byte at a time), ``refuse`` the Patient
identifier values answered 422 with an OperationOutcome."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.parse
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 4 * 1024 * 1024


def outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


class FhirServer:
    def __init__(
        self,
        faults: list[str] | None = None,
        refuse: tuple[str, ...] = (),
        stall_s: float = 2.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.faults = list(faults or [])
        self.refuse = refuse
        self.stall_s = stall_s
        self.lock = threading.Lock()
        self.store: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # type -> id -> res
        self.by_identifier: dict[tuple[str, str], str] = {}  # (type, "system|value") -> id
        self.created: list[tuple[str, str]] = []  # (type, identifier value) in creation order
        self.requests = 0
        self.next_id = 0
        self.dripped = 0  # bytes of "drip" answers the client took
        self.answered: list[str] = []  # what each request got
        self.authorization: list[str | None] = []
        self.invalid: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # a client gone: expected
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FhirServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def resources(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.store[kind].values())

    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """Conditional creates, then references to entries' fullUrls resolved (atomic)."""
        with self.lock:
            resolved: dict[str, str] = {}
            fresh: list[tuple[str, str, dict[str, Any]]] = []
            answers = []
            for entry in bundle["entry"]:
                kind = entry["resource"]["resourceType"]
                query = urllib.parse.parse_qs(entry["request"].get("ifNoneExist", ""))
                key = (kind, query["identifier"][0]) if "identifier" in query else None
                if key and key in self.by_identifier:
                    rid, status = self.by_identifier[key], "200 OK"
                else:
                    self.next_id += 1
                    rid, status = str(self.next_id), "201 Created"
                    fresh.append((kind, rid, entry["resource"]))
                    if key:
                        self.by_identifier[key] = rid
                resolved[entry["fullUrl"]] = f"{kind}/{rid}"
                answers.append({"response": {"status": status, "location": f"{kind}/{rid}"}})
            for kind, rid, resource in fresh:
                text = json.dumps(resource)
                for full_url, ref in resolved.items():
                    text = text.replace(f'"{full_url}"', f'"{ref}"')
                self.store[kind][rid] = {**json.loads(text), "id": rid}
                self.created.append((kind, resource["identifier"][0]["value"]))
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}


def _handler(server: FhirServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _answer(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            with server.lock:
                server.requests += 1
                fault = server.faults.pop(0) if server.faults else "ok"
                server.answered.append(fault)
                server.authorization.append(self.headers.get("Authorization"))
            size = int(self.headers.get("Content-Length") or 0)
            if self.path == "/moved":
                self.send_response(307)
                self.send_header("Location", "/fhir")
                self.send_header("Content-Length", "0")
                return self.end_headers()
            if self.path != "/fhir":
                return self._answer(404, outcome("not-found", f"no endpoint {self.path}"))
            if not 0 < size <= MAX_BODY:
                return self._answer(413, outcome("too-long", f"body of {size} bytes"))
            body = self.rfile.read(size)
            if fault in ("500", "503", "429"):
                return self._answer(int(fault), outcome("transient", "try again later"))
            if fault == "drip":  # an answer that never ends: a byte every 50 ms
                self.send_response(200)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                for _ in range(int(server.stall_s / 0.05)):
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:  # the client hung up
                        return None
                    server.dripped += 1
                    time.sleep(0.05)
                return None
            if fault == "slow":
                time.sleep(server.stall_s)
                return self._answer(503, outcome("timeout", "too late"))
            try:
                doc = json.loads(body)
                from fhir.resources.R4B.bundle import Bundle

                Bundle.model_validate(doc)
            except Exception as e:
                server.invalid.append(str(e))
                return self._answer(400, outcome("invalid", " ".join(str(e).split())[:200]))
            if doc.get("type") != "transaction":
                return self._answer(400, outcome("invalid", "not a transaction Bundle"))
            patient = next(e for e in doc["entry"] if e["resource"]["resourceType"] == "Patient")
            if patient["resource"]["identifier"][0]["value"] in server.refuse:
                text = "Patient identifier not known to the master patient index"
                return self._answer(422, outcome("business-rule", text))
            answer = server.transaction(doc)
            if fault == "lost":
                time.sleep(server.stall_s)
            self._answer(200, answer)

    return Handler
