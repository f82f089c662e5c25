#!/usr/bin/python3
"""Airflow-like burst through pglease: many threads, one SQLAlchemy engine.

Airflow's scheduler and workers share a SQLAlchemy engine (QueuePool) and run
many short transactions at once.  This script does the same against a URL
(normally pglease in transaction mode): THREADS threads each run TXNS
transactions of

    SELECT pg_backend_pid(); SELECT pg_sleep(0.01); SELECT pg_backend_pid()

and at the end it prints one summary line per figure, for the C test
(test/e2e_pool_airflow.c) to check:

    transactions_ok N      transactions that committed
    transactions_failed N  transactions that raised
    mixed_pids N           transactions that saw two different backend pids
    distinct_pids N        distinct backend pids seen over the whole burst
    error <text>           the first few errors, one per line

Uses only Debian's python3-sqlalchemy and python3-psycopg2; run it with
/usr/bin/python3.  Exit status 0 when it ran (the figures say how it went),
2 on bad arguments or a failed import.
"""
import argparse
import sys
import threading

try:
    from sqlalchemy import create_engine, text
except ImportError as e:  # pragma: no cover - reported to the C test
    print("error cannot import sqlalchemy: %s" % e)
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="SQLAlchemy URL (postgresql+psycopg2://...)")
    ap.add_argument("--threads", type=int, default=60)
    ap.add_argument("--txns", type=int, default=20, help="transactions per thread")
    ap.add_argument("--pool-size", type=int, default=20)
    ap.add_argument("--max-overflow", type=int, default=20)
    args = ap.parse_args()

    engine = create_engine(
        args.url,
        pool_size=args.pool_size,
        max_overflow=args.max_overflow,
        pool_timeout=60,
    )
    lock = threading.Lock()
    start = threading.Barrier(args.threads)
    state = {"ok": 0, "failed": 0, "mixed": 0, "pids": set(), "errors": []}

    def worker():
        try:
            start.wait(timeout=60)
        except threading.BrokenBarrierError:
            pass
        for _ in range(args.txns):
            try:
                with engine.begin() as conn:
                    p1 = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                    conn.execute(text("SELECT pg_sleep(0.01)"))
                    p2 = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                with lock:
                    state["ok"] += 1
                    state["pids"].update((p1, p2))
                    if p1 != p2:
                        state["mixed"] += 1
            except Exception as e:  # every failure is counted and shown
                with lock:
                    state["failed"] += 1
                    if len(state["errors"]) < 5:
                        state["errors"].append(" ".join(repr(e).split())[:400])

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()

    print("transactions_ok %d" % state["ok"])
    print("transactions_failed %d" % state["failed"])
    print("mixed_pids %d" % state["mixed"])
    print("distinct_pids %d" % len(state["pids"]))
    for e in state["errors"]:
        print("error %s" % e)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
