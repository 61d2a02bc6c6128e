"""A fake of Consul's KV HTTP API for the benchmark lab (no Consul in Debian).

GET /v1/kv/<key>[?index=N&wait=Xs]: a blocking query as Consul documents it: with an
index equal to the store's, the answer waits until the key changes or the wait ends
(Consul adds up to wait/16 jitter; this fake adds none). 200 with
[{"Key","Value" (base64),"CreateIndex","ModifyIndex","LockIndex","Flags"}], or 404 with
an empty body; X-Consul-Index on every reply. With ?recurse, every key under the prefix
(404 when none); its blocking query returns on any change of the store, which Consul's
documentation allows (a return is a hint, not a change). PUT /v1/kv/<key> with the value
as the body sets it. Usage: python3 fake-consul.py ADDR PORT
"""
import base64
import http.server
import json
import sys
import threading
import time
import urllib.parse

STORE = {}
INDEX = [1]
COND = threading.Condition()


def go_duration(text):
    units = {"ms": 0.001, "s": 1, "m": 60}
    for unit in ("ms", "s", "m"):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * units[unit]
            except ValueError:
                return 300
    return 300


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body go out in separate writes: without TCP_NODELAY the body waits for
    # the client's delayed ACK (40 ms), which a real Consul (Go) never adds.
    disable_nagle_algorithm = True

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Consul-Index", str(INDEX[0]))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        key = urllib.parse.unquote(url.path[len("/v1/kv/"):])
        query = urllib.parse.parse_qs(url.query)
        index = int(query.get("index", ["0"])[0] or 0)
        wait = min(go_duration(query.get("wait", ["300s"])[0]), 600)
        with COND:
            end = time.monotonic() + wait
            while index and index >= INDEX[0] and time.monotonic() < end:
                COND.wait(end - time.monotonic())
            if "recurse" in query or url.query.split("&").count("recurse"):
                entries = sorted((k, v) for k, v in STORE.items() if k.startswith(key))
            else:
                entries = [(key, STORE[key])] if key in STORE else []
        if not entries:
            self.reply(404, b"")
            return
        body = [{"Key": k, "Value": base64.b64encode(value).decode(), "CreateIndex": 1,
                 "ModifyIndex": modify, "LockIndex": 0, "Flags": 0}
                for k, (value, modify) in entries]
        self.reply(200, json.dumps(body).encode())

    def do_PUT(self):
        url = urllib.parse.urlsplit(self.path)
        key = urllib.parse.unquote(url.path[len("/v1/kv/"):])
        value = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with COND:
            INDEX[0] += 1
            STORE[key] = (value, INDEX[0])
            COND.notify_all()
        self.reply(200, b"true")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
