#!/usr/bin/env python3
"""seed_history.py DB [RUNS] [AUDIT]: give a stopped Switchboard's SQLite store
a history of RUNS finished runs (default 1,000,000) and AUDIT audit lines
(default 3,000,000), each run with its answer and transcript line, spread
over the last 20 days (inside the default retention, so the pruner leaves
them). Every row is a copy of one the store already holds (run a few
commands first), with a new id, delivery key and time.

bench/compare/run.sh uses it to measure acks and answers with a long
history against an empty store.
"""
import sqlite3
import sys
import time

db = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
audit = int(sys.argv[3]) if len(sys.argv) > 3 else 3_000_000
now = time.time_ns()
span = 20 * 24 * 3600 * 10**9
gap = span // runs

con = sqlite3.connect(db)
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA synchronous=OFF")


def columns(table):
    return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]


def copy(table, count, overrides, source):
    """INSERT count copies of the row source selects, with the columns in
    overrides computed from i (0..count-1) instead."""
    cols = [c for c in columns(table) if c != "id" or "id" in overrides]
    exprs = [overrides.get(c, f"src.{c}") for c in cols]
    sql = (
        f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {count - 1}) "
        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM n, ({source}) AS src"
    )
    con.execute(sql)


def need(source, what):
    if con.execute(f"SELECT COUNT(*) FROM ({source})").fetchone()[0] == 0:
        sys.exit(f"seed_history: the store holds no {what} to copy; run a command first")


run_src = "SELECT * FROM sb_runs WHERE finished_at > 0 LIMIT 1"
need(run_src, "finished run")
at = f"({now} - (i + 1) * {gap})"
started = time.time()
with con:
    copy("sb_runs", runs, {"id": "'hist-' || i", "delivery_key": "'hist:' || i",
                           "created_at": at, "updated_at": at, "finished_at": at}, run_src)
    msg_src = "SELECT * FROM sb_messages WHERE sent_at > 0 LIMIT 1"
    need(msg_src, "delivered message")
    copy("sb_messages", runs, {"run_id": "'hist-' || i", "created_at": at, "sent_at": at}, msg_src)
    tr_src = "SELECT * FROM sb_transcript WHERE kind = 'answer' LIMIT 1"
    need(tr_src, "transcript line")
    copy("sb_transcript", runs, {"run_id": "'hist-' || i", "at": at, "channel_id": "'C0HIST' || (i % 1000)"}, tr_src)
    audit_src = "SELECT * FROM sb_audit WHERE run_id <> '' LIMIT 1"
    need(audit_src, "audit line")
    per = max(audit // runs, 1)
    copy("sb_audit", audit, {"run_id": f"'hist-' || (i / {per})", "at": f"({now} - (i / {per} + 1) * {gap})"}, audit_src)
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("sb_runs", "sb_audit", "sb_messages", "sb_transcript")}
con.close()
print(f"seeded in {time.time() - started:.0f}s: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
