#!/usr/bin/python3
"""Watch a Patroni cluster's REST APIs and leader key; write what changed, with timestamps.

    patroni-poll.py poll --out FILE --etcd URL --key KEY --stop-file F --max-seconds S NAME=API...
    patroni-poll.py fixtures --events FILE --out DIR
    patroni-poll.py gate --etcd URL --key KEY --stop-file F --max-seconds S NAME=API...

`poll` asks every node, every --interval-ms (default 20), for GET /patroni and then the status
codes of GET /primary, /leader and /replica (one thread per node, so a slow node delays no
other), and watches the leader key through etcd's v3 JSON gateway (a watch stream: every
event is timestamped as it arrives). It appends one JSON line per observation that differs
from the node's previous one in role, state or any status code (the body verbatim in "body"),
and one per key event. It stops when the stop file exists or after --max-seconds.

`fixtures` keeps, per distinct (role, state, /primary, /leader, /replica) observed, the first
body verbatim as a file named for what it shows, prints a Markdown table of them, and the
switchover timings: from the key naming the new leader to its /patroni saying role
master/primary (and to /primary answering 200).

`gate` is a reference for the acceptance test, not part of vipd: every 10 ms it asks each
node's GET /patroni and keeps KEY naming the one node whose body says role master, primary or
standby_leader with state running (deleted when there is none, or more than one). A vipd
whose trigger key is KEY then holds the VIP exactly where a writable primary runs, give or
take a poll: what the acceptance test must accept.
"""

import base64
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

PATHS = ("/primary", "/leader", "/replica")


def now_ms():
    return time.time() * 1000.0


class Out:
    """One JSONL file written by several threads."""

    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, rec):
        line = json.dumps(rec, sort_keys=True)
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


def get(host, port, path, timeout):
    """(status, body bytes) of GET path; (0, b"") when the API does not answer."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        conn.close()


def poll_node(name, api, out, interval, stop):
    u = urllib.parse.urlsplit(api)
    last = None
    ticks, t_first = 0, now_ms()
    while not stop.is_set():
        t0 = now_ms()
        ticks += 1
        status, body = get(u.hostname, u.port, "/patroni", 2.0)
        t1 = now_ms()
        codes = [get(u.hostname, u.port, p, 2.0)[0] for p in PATHS]
        role = state = None
        if body:
            try:
                doc = json.loads(body)
                role, state = doc.get("role"), doc.get("state")
            except ValueError:
                state = "unparsable"
        key = (status, role, state, *codes)
        if key != last:
            last = key
            out.write({
                "t": t1, "t_sent": t0, "kind": "api", "node": name, "patroni_status": status,
                "role": role, "state": state, "primary": codes[0], "leader": codes[1],
                "replica": codes[2], "body": body.decode("utf-8", "replace"),
            })
        stop.wait(max(0.0, interval - (now_ms() - t0) / 1000.0))
    out.write({"t": now_ms(), "kind": "stats", "node": name, "ticks": ticks,
               "mean_period_ms": round((now_ms() - t_first) / max(ticks, 1), 1)})


def watch_key(etcd, key, out, stop):
    """etcd v3 watch stream on KEY; reconnects (bounded by stop) when the stream ends."""
    u = urllib.parse.urlsplit(etcd)
    b64 = base64.b64encode(key.encode()).decode()
    while not stop.is_set():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=1.0)
        try:
            req = json.dumps({"create_request": {"key": b64}})
            conn.request("POST", "/v3/watch", body=req,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            while not stop.is_set():
                try:
                    line = resp.readline()
                except TimeoutError:
                    continue
                if not line:
                    break
                t = now_ms()
                msg = json.loads(line).get("result", {})
                for ev in msg.get("events", []):
                    kv = ev.get("kv", {})
                    value = base64.b64decode(kv.get("value", "")).decode()
                    out.write({"t": t, "kind": "key", "type": ev.get("type", "PUT"),
                               "value": value, "mod_revision": kv.get("mod_revision")})
        except (OSError, http.client.HTTPException, ValueError):
            stop.wait(0.05)
        finally:
            conn.close()


def parse_args(args):
    """`--name value` options and `node=url` pairs."""
    opts, nodes = {}, []
    it = iter(args)
    for a in it:
        if a.startswith("--"):
            opts[a[2:]] = next(it)
        else:
            nodes.append(a.split("=", 1))
    return opts, nodes


def poll(args):
    opts, nodes = parse_args(args)
    out = Out(opts["out"])
    interval = int(opts.get("interval-ms", "20")) / 1000.0
    deadline = time.monotonic() + float(opts["max-seconds"])
    stop = threading.Event()
    threads = [threading.Thread(target=watch_key, args=(opts["etcd"], opts["key"], out, stop),
                                daemon=True)]
    threads += [threading.Thread(target=poll_node, args=(n, a, out, interval, stop), daemon=True)
                for n, a in nodes]
    for t in threads:
        t.start()
    while time.monotonic() < deadline and not os.path.exists(opts["stop-file"]):
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(2.0)


def etcd_call(conn, path, doc):
    conn.request("POST", path, body=json.dumps(doc), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def gate(args):
    opts, nodes = parse_args(args)
    u = urllib.parse.urlsplit(opts["etcd"])
    b64 = base64.b64encode(opts["key"].encode()).decode()
    deadline = time.monotonic() + float(opts["max-seconds"])
    current = object()  # unknown: write the first answer whatever it is
    while time.monotonic() < deadline and not os.path.exists(opts["stop-file"]):
        t0 = now_ms()
        writable = []
        for name, api in nodes:
            a = urllib.parse.urlsplit(api)
            status, body = get(a.hostname, a.port, "/patroni", 0.5)
            try:
                doc = json.loads(body) if status == 200 else {}
            except ValueError:
                doc = {}
            if doc.get("role") in ("master", "primary", "standby_leader") and \
                    doc.get("state") == "running":
                writable.append(name)
        want = writable[0] if len(writable) == 1 else None
        if want != current:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=2.0)
            try:
                if want is None:
                    ok = etcd_call(conn, "/v3/kv/deleterange", {"key": b64}) == 200
                else:
                    value = base64.b64encode(want.encode()).decode()
                    ok = etcd_call(conn, "/v3/kv/put", {"key": b64, "value": value}) == 200
                if ok:
                    current = want
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
        time.sleep(max(0.0, 0.01 - (now_ms() - t0) / 1000.0))


def fixture_name(ev, new_leader):
    """A name for what the body shows, and the status codes Patroni 3.0's api.py gives with it.
    The three status requests follow the /patroni one: when the node changed in between, the
    codes differ from the expected ones and the name says which they were."""
    role, state, leader = ev["role"], ev["state"], ev["leader"]
    if ev["patroni_status"] == 0:
        return None
    if role in ("master", "primary") and state == "running" and leader == 200:
        name, want = "primary-running", (200, 200, 503)
    elif role == "replica" and state == "running" and leader == 503 and ev["replica"] == 200:
        name, want = "replica-running", (503, 503, 200)
    elif role == "replica" and leader == 200 and new_leader:
        name = "new-leader-still-in-recovery" + ("" if state == "running" else "-" + state)
        want = (200, 200, 200) if state == "running" else (200, 200, 503)
    elif leader == 200:
        name, want = f"{role}-{state}-holds-leader-lock", (200, 200, 503)
    else:
        name, want = f"{role}-{state}", (503, 503, 503 if state != "running" else 200)
    got = (ev["primary"], ev["leader"], ev["replica"])
    if got != want:
        name += "-codes-" + "-".join(map(str, got))
    return name.replace(" ", "-")


def fixtures(args):
    opts = dict(zip(args[::2], args[1::2]))
    events = [json.loads(line) for line in open(opts["--events"], encoding="utf-8")]
    events.sort(key=lambda e: e["t"])
    outdir = opts["--out"]
    os.makedirs(outdir, exist_ok=True)
    # The leader key's history: (time, value or None).
    key_hist = [(e["t"], e["value"] if e["type"] != "DELETE" else None)
                for e in events if e["kind"] == "key"]
    holders = {v for _, v in key_hist if v}

    def holder_at(t):
        h = None
        for kt, v in key_hist:
            if kt > t:
                break
            h = v
        return h

    seen = {}
    for e in events:
        if e["kind"] != "api":
            continue
        cls = (e["patroni_status"], e["role"], e["state"], e["primary"], e["leader"], e["replica"])
        if cls in seen:
            seen[cls]["count"] += 1
            seen[cls]["nodes"].add(e["node"])
            continue
        # The poll started up to one request before the reply: look a little later.
        h = holder_at(e["t"] + 200)
        new_leader = h == e["node"]
        name = fixture_name(e, new_leader)
        seen[cls] = {"name": name, "ev": e, "count": 1, "holder": h, "nodes": {e["node"]}}
    used = set()
    print("| file | role | state | GET /patroni | /primary | /leader | /replica | first seen on "
          "| times entered (nodes) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for cls, s in seen.items():
        e, name = s["ev"], s["name"]
        fname = "-"
        if name:
            base, k = name, 2
            while name in used:
                name = f"{base}-{k}"
                k += 1
            used.add(name)
            fname = name + ".json"
            with open(os.path.join(outdir, fname), "w", encoding="utf-8", newline="") as f:
                f.write(e["body"])
        who = f"{e['node']} (key: {s['holder'] or 'absent'})"
        print(f"| {fname} | {e['role']} | {e['state']} | {e['patroni_status'] or 'no answer'} "
              f"| {e['primary']} | {e['leader']} | {e['replica']} | {who} "
              f"| {s['count']} ({', '.join(sorted(s['nodes']))}) |")
    timings(events, key_hist, holders)
    print()
    for e in events:
        if e["kind"] == "stats":
            print(f"- {e['node']}: polled {e['ticks']} times, every {e['mean_period_ms']} ms "
                  "on average (GET /patroni, /primary, /leader, /replica one after another)")


def timings(events, key_hist, holders):
    """Per key change to a new holder: ms until its /patroni says master/primary and until its
    /primary answers 200; and the old holder's key release after it stopped being primary."""
    print()
    print("| new leader | key PUT (ms after start) | /primary 200 after key | "
          "role master after key | /primary 200 while role replica |")
    print("| --- | --- | --- | --- | --- |")
    t_start = events[0]["t"]
    prev = None
    for t, v in key_hist:
        if not v or v == prev:
            prev = v if v else prev
            continue
        prev = v
        mine = [e for e in events if e["kind"] == "api" and e["node"] == v and e["t"] >= t - 1000]
        t_primary = next((e["t"] for e in mine if e["primary"] == 200 and e["t"] >= t - 1000),
                         None)
        t_master = next((e["t"] for e in mine
                         if e["role"] in ("master", "primary") and e["state"] == "running"),
                        None)
        fmt = (lambda x: "not seen" if x is None else f"{x - t:.0f} ms")
        window = "-" if t_master is None or t_primary is None else f"{t_master - t_primary:.0f} ms"
        print(f"| {v} | {t - t_start:.0f} | {fmt(t_primary)} | {fmt(t_master)} | {window} |")


def main():
    commands = {"poll": poll, "fixtures": fixtures, "gate": gate}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    commands[sys.argv[1]](sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
