#!/usr/bin/python3
"""A PostgreSQL client hammering the VIP: a new connection per attempt, one line per attempt.

    vip-client.py run --host VIP --out FILE --stop-file F --max-seconds S [--interval-ms 20]
    vip-client.py report --attempts FILE --switches FILE [--keys FILE]

`run` opens a new libpq connection (psycopg2, the library psql uses) to VIP every
--interval-ms, each in its own thread so that a slow one delays no other (an attempt waits no
longer than libpq's connect_timeout, 2 s), runs
`SELECT pg_is_in_recovery(), inet_server_addr(), current_setting('cluster_name'),
current_setting('data_directory')` and appends a JSON line: start time, milliseconds taken,
and either the answer (the node is the data directory's parent's name) or the error.

`report` reads those lines and the switchovers' start/end times (lines "START_MS END_MS FROM TO")
and prints, per switchover and in all, how many connections reached a writable primary, how
many a node in recovery (read-only: the failure this test exists to find), how many failed,
and the longest time without a connection to a writable primary; with --keys (the leader key's
events, written by patroni-poll.py), when the key moved and when connections first reached the
new leader, and in what state. The last line is the summary;
the exit status is 1 when any connection reached a node in recovery.
"""

import json
import os
import sys
import threading
import time

QUERY = ("SELECT pg_is_in_recovery(), host(inet_server_addr()), "
         "current_setting('cluster_name'), current_setting('data_directory')")


MAX_IN_FLIGHT = 200


def now_ms():
    return time.time() * 1000.0


def attempt(psycopg2, dsn, out):
    t0 = now_ms()
    rec = {"t": t0}
    try:
        conn = psycopg2.connect(dsn)
        try:
            cur = conn.cursor()
            cur.execute(QUERY)
            in_recovery, addr, _, data_dir = cur.fetchone()
        finally:
            conn.close()
        rec.update(ok=True, in_recovery=in_recovery, addr=addr,
                   node=os.path.basename(os.path.dirname(data_dir)))
    except psycopg2.Error as e:
        rec.update(ok=False, error=str(e).strip().splitlines()[0] if str(e) else "error")
    rec["ms"] = round(now_ms() - t0, 1)
    out.write(rec)


def run(opts):
    import psycopg2  # only `run` needs it (Debian's python3-psycopg2, a Patroni dependency)

    interval = int(opts.get("--interval-ms", "20")) / 1000.0
    deadline = time.monotonic() + float(opts["--max-seconds"])
    dsn = (f"host={opts['--host']} port=5432 user=postgres dbname=postgres "
           "connect_timeout=2 application_name=vip-client")
    out = Out(opts["--out"])
    # Attempts start on the clock, each in its own thread: one that hangs (a SYN sent while the
    # VIP is nowhere waits for TCP's 1 s retransmission) must not hide what the next ones meet.
    # At most MAX_IN_FLIGHT at once; a tick beyond that is recorded as skipped.
    in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
    threads = []
    while time.monotonic() < deadline and not os.path.exists(opts["--stop-file"]):
        t0 = now_ms()
        if in_flight.acquire(blocking=False):
            def one():
                try:
                    attempt(psycopg2, dsn, out)
                finally:
                    in_flight.release()
            th = threading.Thread(target=one, daemon=True)
            th.start()
            threads.append(th)
            threads = [t for t in threads if t.is_alive()]
        else:
            out.write({"t": t0, "ok": False, "error": "skipped: too many attempts in flight",
                       "ms": 0.0})
        time.sleep(max(0.0, interval - (now_ms() - t0) / 1000.0))
    for th in threads:
        th.join(3.0)


class Out:
    """One JSONL file written by several threads."""

    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, rec):
        line = json.dumps(rec)
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


def stats(rows):
    ok = [r for r in rows if r["ok"]]
    rw = [r for r in ok if not r["in_recovery"]]
    ro = [r for r in ok if r["in_recovery"]]
    gap, last = 0.0, rows[0]["t"] if rows else 0.0
    for r in rw:
        gap = max(gap, r["t"] - last)
        last = r["t"]
    if rows:
        gap = max(gap, rows[-1]["t"] - last)
    return len(rows), len(rw), len(ro), len(rows) - len(ok), gap


def done(r):
    return r["t"] + r["ms"]


def moves(rows, switches, keys_path):
    """Per switchover, relative to the old leader's key DELETE: the new leader's key PUT, the
    last connection to the old node, the first to the new one, the first to the new one as a
    writable primary (connections by the time they were answered: the query's reply)."""
    keys = [json.loads(line) for line in open(keys_path, encoding="utf-8")]
    keys = [k for k in keys if k.get("kind") == "key"]
    print()
    print("| switchover | key deleted | key put (new leader) | last to old node | first to new node "
          "| first to new node, writable |")
    print("| --- | --- | --- | --- | --- | --- |")
    for start, end, old, new in switches:
        start, end = float(start), float(end)
        ks = [k for k in keys if start <= k["t"] <= end]
        t_del = next((k["t"] for k in ks if k["type"] == "DELETE"), None)
        t_put = next((k["t"] for k in ks if k["type"] != "DELETE" and k["value"] == new), None)
        base = t_del or t_put
        if base is None:
            print(f"| {old} -> {new} | no key event seen | | | | |")
            continue
        mine = [r for r in rows if start <= r["t"] <= end + 1000 and r["ok"]]
        mine.sort(key=done)
        last_old = max((done(r) for r in mine if r["node"] == old), default=None)
        first_new = next((r for r in mine if r["node"] == new), None)
        first_rw = next((done(r) for r in mine if r["node"] == new and not r["in_recovery"]),
                        None)

        def rel(t):
            return "-" if t is None else f"{t - base:+.0f} ms"

        state = ""
        if first_new:
            state = " (in recovery)" if first_new["in_recovery"] else " (writable)"
        print(f"| {old} -> {new} | {rel(t_del)} | {rel(t_put)} | {rel(last_old)} "
              f"| {rel(first_new and done(first_new))}{state} | {rel(first_rw)} |")


def report(opts):
    rows = [json.loads(line) for line in open(opts["--attempts"], encoding="utf-8")]
    rows.sort(key=lambda r: r["t"])
    switches = [line.split() for line in open(opts["--switches"], encoding="utf-8")
                if line.strip()]
    print("| switchover | attempts | to a primary | to a node in recovery | failed "
          "| longest without a primary |")
    print("| --- | --- | --- | --- | --- | --- |")
    for start, end, old, new in switches:
        # From the request until the new leader was settled, plus 1 s.
        mine = [r for r in rows if float(start) <= r["t"] <= float(end) + 1000]
        n, rw, ro, failed, gap = stats(mine)
        print(f"| {old} -> {new} | {n} | {rw} | {ro} | {failed} | {gap:.0f} ms |")
    if "--keys" in opts:
        moves(rows, switches, opts["--keys"])
    n, rw, ro, failed, gap = stats(rows)
    bad = [r for r in rows if r["ok"] and r["in_recovery"]]
    for r in bad[:20]:
        print(f"  in recovery: {r['node']} via {r['addr']}, attempt started at {r['t']:.0f}, "
              f"answered after {r['ms']:.0f} ms")
    if len(bad) > 20:
        print(f"  ... and {len(bad) - 20} more")
    errors = {}
    for r in rows:
        if not r["ok"]:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    for e, k in sorted(errors.items(), key=lambda x: -x[1]):
        print(f"  failed {k}x: {e}")
    verdict = "PASS" if ro == 0 and rw > 0 else "FAIL"
    print(f"accept: {verdict}: {len(switches)} switchovers, {n} connections: {rw} to a primary, "
          f"{ro} to a node in recovery, {failed} failed; longest without a primary {gap:.0f} ms")
    return 0 if verdict == "PASS" else 1


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "report"):
        print(__doc__, file=sys.stderr)
        return 2
    opts = dict(zip(sys.argv[2::2], sys.argv[3::2]))
    if sys.argv[1] == "run":
        run(opts)
        return 0
    return report(opts)


if __name__ == "__main__":
    sys.exit(main())
