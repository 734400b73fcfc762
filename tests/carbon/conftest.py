"""A real HTTP server on 127.0.0.1 serving recorded responses in each API's JSON shape, with
scripted failures (slow, 401/429/500, malformed JSON, missing fields)."""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

DATA = os.path.join(os.path.dirname(__file__), "data")

with open(os.path.join(DATA, "electricitymaps_history_US-MIDW-MISO_sample.json")) as f:
    EM_HISTORY = json.load(f)

EM_LATEST = {
    "zone": "US-MIDW-MISO",
    "carbonIntensity": 437,
    "datetime": "2024-12-01T05:00:00.000Z",
    "updatedAt": "2024-12-01T05:44:10.595Z",
    "createdAt": "2024-11-28T05:43:54.038Z",
    "emissionFactorType": "lifecycle",
    "isEstimated": True,
    "estimationMethod": "TIME_SLICER_AVERAGE",
}
EM_FORECAST = {
    "zone": "US-MIDW-MISO",
    "forecast": [
        {"carbonIntensity": 430 + 5 * h, "datetime": f"2030-01-01T{h:02d}:00:00.000Z"}
        for h in range(24)
    ],
    "updatedAt": "2029-12-31T23:50:00.000Z",
}

WT_TOKEN = "wt-secret-token"
WT_FORECAST = {
    "data": [
        {"point_time": f"2030-01-01T00:{m:02d}:00+00:00", "value": 1000.0 - m}
        for m in range(0, 60, 5)
    ],
    "meta": {
        "region": "CAISO_NORTH",
        "signal_type": "co2_moer",
        "units": "lbs_co2_per_mwh",
        "generated_at": "2030-01-01T00:00:00+00:00",
        "model": {"date": "2023-03-01"},
        "data_point_period_seconds": 300,
    },
}
WT_INDEX = {
    "data": [{"point_time": "2030-01-01T00:00:00+00:00", "value": 87.0}],
    "meta": {"region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "percentile"},
}

UK_NATIONAL = {
    "data": [
        {
            "from": "2030-01-01T12:00Z",
            "to": "2030-01-01T12:30Z",
            "intensity": {"forecast": 266, "actual": 263, "index": "moderate"},
        }
    ]
}
UK_FW24H = {
    "data": [
        {
            "from": f"2030-01-01T{h // 2:02d}:{30 * (h % 2):02d}Z",
            "to": f"2030-01-01T{(h + 1) // 2:02d}:{30 * ((h + 1) % 2):02d}Z",
            "intensity": {"forecast": 200 + h, "actual": None, "index": "moderate"},
        }
        for h in range(47)
    ]
}
UK_POSTCODE = {
    "data": [
        {
            "regionid": 12,
            "dnoregion": "SSE South",
            "shortname": "South England",
            "postcode": "RG10",
            "data": [
                {
                    "from": "2030-01-01T12:00Z",
                    "to": "2030-01-01T12:30Z",
                    "intensity": {"forecast": 143, "index": "low"},
                    "generationmix": [{"fuel": "wind", "perc": 40.1}],
                }
            ],
        }
    ]
}


class Api:
    """Routes and scripted failures; `requests` records (path, headers) of every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.fail: dict[str, list] = {}  # path prefix -> queue of ("status", n)|("slow", s)|...

    def respond(self, path: str, headers: dict):
        self.requests.append((path, headers))
        route = path.split("?", 1)[0]
        for prefix, queue in self.fail.items():
            if route.startswith(prefix) and queue:
                kind, arg = queue.pop(0)
                if kind == "status":
                    return arg, b'{"error": "scripted"}'
                if kind == "slow":
                    time.sleep(arg)
                if kind == "body":
                    return 200, arg
        if route.startswith("/v3/carbon-intensity/"):
            if headers.get("auth-token") != "em-secret":
                return 401, b'{"error": "unauthorized"}'
            kind = route.rsplit("/", 1)[1]
            return 200, json.dumps(
                {"latest": EM_LATEST, "history": EM_HISTORY, "forecast": EM_FORECAST}[kind]
            ).encode()
        if route == "/login":
            ok = headers.get("authorization", "").startswith("Basic ")
            return (200, json.dumps({"token": WT_TOKEN}).encode()) if ok else (401, b"{}")
        if route.startswith("/v3/"):
            if headers.get("authorization") != f"Bearer {WT_TOKEN}":
                return 401, b"{}"
            body = WT_INDEX if route == "/v3/signal-index" else WT_FORECAST
            return 200, json.dumps(body).encode()
        if route == "/intensity":
            return 200, json.dumps(UK_NATIONAL).encode()
        if route.startswith("/intensity/") and route.endswith("/fw24h"):
            return 200, json.dumps(UK_FW24H).encode()
        if route.startswith("/regional/postcode/"):
            return 200, json.dumps(UK_POSTCODE).encode()
        return 404, b'{"error": "not found"}'


@pytest.fixture
def api():
    state = Api()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            status, body = state.respond(self.path, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
