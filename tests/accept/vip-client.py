#!/usr/bin/python3
"""A PostgreSQL client hammering the VIP: a new connection per attempt, one line per attempt.

    vip-client.py run --host VIP --out FILE --stop-file F --max-seconds S [--interval-ms 20]
    vip-client.py report --attempts FILE --switches FILE

`run` opens a new libpq connection (psycopg2, the library psql uses) to VIP every
--interval-ms (a failed attempt waits no longer than libpq's connect_timeout, 2 s), runs
`SELECT pg_is_in_recovery(), inet_server_addr(), current_setting('cluster_name'),
current_setting('data_directory')` and appends a JSON line: start time, milliseconds taken,
and either the answer (the node is the data directory's parent's name) or the error.

`report` reads those lines and the switchovers' start/end times (lines "START_MS END_MS FROM TO")
and prints, per switchover and in all, how many connections reached a writable primary, how
many a node in recovery (read-only: the failure this test exists to find), how many failed,
and the longest time without a connection to a writable primary. The last line is the summary;
the exit status is 1 when any connection reached a node in recovery.
"""

import json
import os
import sys
import time

QUERY = ("SELECT pg_is_in_recovery(), host(inet_server_addr()), "
         "current_setting('cluster_name'), current_setting('data_directory')")


def now_ms():
    return time.time() * 1000.0


def run(opts):
    import psycopg2  # only `run` needs it (Debian's python3-psycopg2, a Patroni dependency)

    interval = int(opts.get("--interval-ms", "20")) / 1000.0
    deadline = time.monotonic() + float(opts["--max-seconds"])
    dsn = (f"host={opts['--host']} port=5432 user=postgres dbname=postgres "
           "connect_timeout=2 application_name=vip-client")
    with open(opts["--out"], "a", encoding="utf-8") as out:
        while time.monotonic() < deadline and not os.path.exists(opts["--stop-file"]):
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
            out.write(json.dumps(rec) + "\n")
            out.flush()
            time.sleep(max(0.0, interval - (now_ms() - t0) / 1000.0))


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


def report(opts):
    rows = [json.loads(line) for line in open(opts["--attempts"], encoding="utf-8")]
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
    n, rw, ro, failed, gap = stats(rows)
    for r in rows:
        if r["ok"] and r["in_recovery"]:
            print(f"  in recovery: {r['node']} via {r['addr']} at {r['t']:.0f}")
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
