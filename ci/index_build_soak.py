"""CREATE INDEX on a large table of a running 3-node cluster while writers
on the other two nodes insert, update and delete, optionally with the
building node killed (-9) mid-backfill; then the index is compared with a
full scan, key by key, at one snapshot.

Run through ci/index_build_soak.sh, which starts the cluster (ports
5433-5435) and stops it afterwards. Prints what it measured; exits 1 when
the index and the table disagree or a client saw a non-retryable error.
"""

import argparse
import os
import random
import signal
import sys
import threading
import time

import psycopg2

RETRYABLE = {"40001", "40003"}
KEYS = 50_000


def connect(node):
    conn = psycopg2.connect(host="127.0.0.1", port=5432 + node, user="postgres", dbname="postgres")
    conn.autocommit = True
    return conn


def load(rows, batch):
    c = connect(1).cursor()
    c.execute("DROP TABLE IF EXISTS soak")
    c.execute("CREATE TABLE soak (id BIGINT PRIMARY KEY, k BIGINT NOT NULL, pad TEXT NOT NULL)")
    started = time.monotonic()
    for start in range(1, rows + 1, batch):
        end = min(start + batch - 1, rows)
        c.execute(
            "INSERT INTO soak SELECT value, value %% %s, 'pad-' || CAST(value AS TEXT) "
            "FROM generate_series(%s, %s) AS g(value)",
            (KEYS, start, end),
        )
    took = time.monotonic() - started
    print(f"loaded {rows} rows in {took:.1f} s ({rows / took:.0f} rows/s)", flush=True)


class Writer(threading.Thread):
    """Inserts new rows, moves rows to other keys and deletes rows, one
    autocommit statement at a time, on one node."""

    def __init__(self, node, rows, stop):
        super().__init__(daemon=True)
        self.node, self.rows, self.stop = node, rows, stop
        self.done = self.retried = 0
        self.failures = []

    def run(self):
        rng = random.Random(self.node)
        conn = connect(self.node)
        c = conn.cursor()
        n = 0
        while not self.stop.is_set():
            n += 1
            victim = rng.randint(1, self.rows)
            kind = n % 3
            if kind == 0:
                sql, args = "INSERT INTO soak VALUES (%s, %s, 'w')", (self.node * 10**9 + n, rng.randrange(KEYS))
            elif kind == 1:
                sql, args = "UPDATE soak SET k = %s WHERE id = %s", (rng.randrange(KEYS), victim)
            else:
                sql, args = "DELETE FROM soak WHERE id = %s", (victim,)
            try:
                c.execute(sql, args)
                self.done += 1
            except psycopg2.Error as e:
                if e.pgcode in RETRYABLE:
                    self.retried += 1
                else:
                    self.failures.append(f"{sql % args}: {e.pgcode} {e}")
                    if len(self.failures) > 20:
                        return


def job(c):
    """The index build's (status, rows backfilled), ("none", 0) before it
    has a job record."""
    c.execute("SHOW JOBS")
    for row in c.fetchall():
        if "soak_k" in str(row[2]):
            return row[3], int(row[5] or 0)
    return "none", 0


def build(rows, kill, pid_file):
    """Runs CREATE INDEX on node 1; with `kill`, kills node 1 once a third of
    the rows are backfilled and waits for another node to finish the job."""
    outcome = {}

    def statement():
        started = time.monotonic()
        try:
            connect(1).cursor().execute("CREATE INDEX soak_k ON soak (k)")
            outcome["error"] = None
        except psycopg2.Error as e:
            outcome["error"] = f"{e.pgcode or 'connection lost'}: {str(e).strip()}"
        outcome["took"] = time.monotonic() - started

    started = time.monotonic()
    t = threading.Thread(target=statement, daemon=True)
    t.start()
    watcher = connect(2).cursor()
    if kill:
        while t.is_alive():
            status, done = job(watcher)
            if status == "running" and done >= rows // 3:
                with open(pid_file) as f:
                    os.kill(int(f.read().strip()), signal.SIGKILL)
                print(f"killed node 1 at {done} backfilled rows", flush=True)
                break
            time.sleep(0.05)
    t.join()
    while True:
        status, done = job(watcher)
        if status not in ("running", "none"):
            break
        time.sleep(0.2)
    took = time.monotonic() - started
    print(f"CREATE INDEX: job {status} after {took:.1f} s ({done} rows backfilled, "
          f"{rows / took:.0f} rows/s); its client saw {outcome['error'] or 'success'}", flush=True)
    return status


def compare(samples):
    """Index against full scan for `samples` keys, at one snapshot."""
    conn = connect(2)
    c = conn.cursor()
    deadline = time.monotonic() + 15
    while True:
        c.execute("EXPLAIN SELECT id FROM soak WHERE k = 1")
        if "index=soak_k" in str(c.fetchall()):
            break
        if time.monotonic() > deadline:
            print("node 2 never planned with soak_k")
            return False
        time.sleep(0.1)
    c.execute("BEGIN")
    keys = random.Random(7).sample(range(KEYS), samples)
    via_index = {}
    for k in keys:
        c.execute("SELECT id FROM soak WHERE k = %s ORDER BY id", (k,))
        via_index[k] = [r[0] for r in c.fetchall()]
    # One full scan for every sampled key (`k + 0` is no index predicate).
    c.execute("SELECT k + 0, id FROM soak WHERE k + 0 IN %s ORDER BY 1, 2", (tuple(keys),))
    scanned = {k: [] for k in keys}
    for k, id_ in c.fetchall():
        scanned[k].append(id_)
    bad = 0
    for k in keys:
        if via_index[k] != scanned[k]:
            bad += 1
            print(f"k = {k}: index {via_index[k]} but table {scanned[k]}")
    c.execute("SELECT count(*) FROM soak")
    total = c.fetchone()[0]
    c.execute("COMMIT")
    print(f"compared {samples} keys of {KEYS}: {bad} differ; {total} rows now", flush=True)
    return bad == 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=50_000)
    p.add_argument("--kill", action="store_true", help="kill -9 the building node mid-backfill")
    p.add_argument("--pid-file", required=True, help="node 1's pid file")
    p.add_argument("--samples", type=int, default=500)
    a = p.parse_args()
    load(a.rows, a.batch)
    stop = threading.Event()
    writers = [Writer(n, a.rows, stop) for n in (2, 3)]
    for w in writers:
        w.start()
    status = build(a.rows, a.kill, a.pid_file)
    stop.set()
    for w in writers:
        w.join()
        print(f"writer on node {w.node}: {w.done} statements, {w.retried} retryable errors, "
              f"{len(w.failures)} others", flush=True)
        for f in w.failures[:5]:
            print("  " + f)
    ok = status == "succeeded" and all(not w.failures for w in writers) and compare(a.samples)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
