#!/usr/bin/python3
"""psycopg2 and SQLAlchemy (over psycopg2) through pglease in transaction mode.

Run by test/e2e_clients.c with the connection in environment variables:
PGL_HOST, PGL_PORT, PGL_USER, PGL_PASSWORD, PGL_DB (a transaction-mode pool of
PGL_POOL_SIZE servers).  Prints one "ok - ..." or "not ok - ..." line per check
and "# ..." diagnostics; exits 0 when it could run all its checks.
"""
import os
import sys
import threading
import traceback

failures = 0


def check(cond, name, diag=None):
    global failures
    if cond:
        print("ok - " + name, flush=True)
    else:
        failures += 1
        print("not ok - " + name, flush=True)
        if diag is not None:
            for line in str(diag).splitlines():
                print("# " + line, flush=True)


HOST = os.environ["PGL_HOST"]
PORT = int(os.environ["PGL_PORT"])
USER = os.environ["PGL_USER"]
PASSWORD = os.environ["PGL_PASSWORD"]
DB = os.environ["PGL_DB"]
POOL_SIZE = int(os.environ.get("PGL_POOL_SIZE", "2"))


def psycopg2_checks():
    import psycopg2
    import psycopg2.extras

    def connect():
        return psycopg2.connect(host=HOST, port=PORT, user=USER, password=PASSWORD,
                                dbname=DB, sslmode="disable", connect_timeout=10)

    conns = [connect() for _ in range(3)]
    a, b, c = conns
    cur = a.cursor()
    cur.execute("SELECT %s::int + 1, %s::text", (41, "psycopg2"))
    check(cur.fetchone() == (42, "psycopg2"), "psycopg2: parameterised query")
    a.commit()

    # One backend per transaction, even with other connections working meanwhile.
    ok = True
    pids = set()
    for i in range(30):
        conn = conns[i % 3]
        other = conns[(i + 1) % 3]
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        p1 = cur.fetchone()[0]
        ocur = other.cursor()
        ocur.execute("SELECT %s", (i,))
        other.commit()
        cur.execute("SELECT pg_backend_pid()")
        p2 = cur.fetchone()[0]
        conn.commit()
        pids.update((p1, p2))
        ok = ok and p1 == p2
    check(ok, "psycopg2: each transaction keeps one backend while other connections run")
    check(1 <= len(pids) <= POOL_SIZE,
          "psycopg2: at most pool_size=%d backends (%d)" % (POOL_SIZE, len(pids)))

    cur = a.cursor()
    cur.execute("DROP TABLE IF EXISTS pg2_items")
    cur.execute("CREATE TABLE pg2_items (id int PRIMARY KEY, name text)")
    a.commit()
    psycopg2.extras.execute_values(cur, "INSERT INTO pg2_items VALUES %s",
                                   [(i, "item-%d" % i) for i in range(1000)])
    a.commit()
    cur.execute("SELECT count(*), sum(id) FROM pg2_items")
    check(cur.fetchone() == (1000, 499500), "psycopg2: execute_values of 1000 rows")
    a.commit()

    try:
        cur.execute("INSERT INTO pg2_items VALUES (1, 'dup')")
        check(False, "psycopg2: duplicate key raises IntegrityError")
    except psycopg2.IntegrityError as e:
        check(e.pgcode == "23505", "psycopg2: duplicate key raises IntegrityError (23505)")
        a.rollback()
    cur.execute("SELECT 'usable'")
    check(cur.fetchone() == ("usable",), "psycopg2: the connection is usable after rollback")
    a.commit()

    # A server-side (named) cursor lives inside one transaction.
    nc = b.cursor(name="pg2_named_cursor")
    nc.itersize = 100
    nc.execute("SELECT id FROM pg2_items ORDER BY id")
    total = 0
    n = 0
    for (i,) in nc:
        total += i
        n += 1
        if n == 500:
            # another connection runs meanwhile
            ccur = c.cursor()
            ccur.execute("SELECT 1")
            c.commit()
    nc.close()
    b.commit()
    check((n, total) == (1000, 499500),
          "psycopg2: named (server-side) cursor fetched in batches inside a transaction")

    # COPY both ways.
    import io
    data = io.StringIO("".join("%d\tcopy-%d\n" % (i, i) for i in range(1000, 21000)))
    cur.copy_expert("COPY pg2_items FROM STDIN", data)
    a.commit()
    out = io.StringIO()
    cur.copy_expert("COPY (SELECT * FROM pg2_items ORDER BY id) TO STDOUT", out)
    a.commit()
    check(out.getvalue().count("\n") == 21000, "psycopg2: COPY FROM STDIN and TO STDOUT")

    # Notices.
    cur.execute("DO $$ BEGIN RAISE NOTICE 'psycopg2 notice %', 1; END $$")
    a.commit()
    check(any("psycopg2 notice 1" in x for x in a.notices), "psycopg2: notices arrive",
          a.notices)

    # Autocommit.
    a.autocommit = True
    cur.execute("SELECT 2 * 21")
    check(cur.fetchone() == (42,), "psycopg2: autocommit query")
    cur.execute("DROP TABLE pg2_items")
    for conn in conns:
        conn.close()


def sqlalchemy_checks():
    import sqlalchemy
    from sqlalchemy import (Column, Integer, MetaData, String, Table, create_engine,
                            exc, select, text)

    url = "postgresql+psycopg2://%s:%s@%s:%d/%s" % (USER, PASSWORD, HOST, PORT, DB)
    engine = create_engine(url, pool_size=8, max_overflow=0,
                           connect_args={"sslmode": "disable", "connect_timeout": 10})
    print("# SQLAlchemy %s" % sqlalchemy.__version__, flush=True)
    with engine.connect() as conn:
        v = conn.execute(text("SELECT :a + :b"), {"a": 40, "b": 2}).scalar()
        check(v == 42, "sqlalchemy: text() query with bound parameters")

    meta = MetaData()
    orders = Table("sa_orders", meta,
                   Column("id", Integer, primary_key=True),
                   Column("client", Integer, nullable=False),
                   Column("note", String(50)))
    meta.drop_all(engine)
    meta.create_all(engine)
    check(True, "sqlalchemy: MetaData.create_all")

    errors = []
    pid_pairs = []
    lock = threading.Lock()

    def worker(k):
        try:
            for t in range(25):
                with engine.begin() as conn:
                    p1 = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                    conn.execute(orders.insert(), [
                        {"id": k * 1000 + t * 2, "client": k, "note": "a"},
                        {"id": k * 1000 + t * 2 + 1, "client": k, "note": "b"},
                    ])
                    n = conn.execute(select(sqlalchemy.func.count()).select_from(orders)
                                     .where(orders.c.client == k)).scalar()
                    p2 = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                    if n != (t + 1) * 2:
                        raise AssertionError("client %d saw %d rows, not %d" % (k, n, (t + 1) * 2))
                with lock:
                    pid_pairs.append((p1, p2))
        except Exception:
            with lock:
                errors.append(traceback.format_exc())

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    check(not errors, "sqlalchemy: 8 threads x 25 engine.begin() transactions",
          "\n".join(errors[:2]))
    check(len(pid_pairs) == 200 and all(p1 == p2 for p1, p2 in pid_pairs),
          "sqlalchemy: every transaction saw one backend pid")
    pids = {p for pair in pid_pairs for p in pair}
    check(1 <= len(pids) <= POOL_SIZE,
          "sqlalchemy: at most pool_size=%d backends (%d)" % (POOL_SIZE, len(pids)))
    with engine.connect() as conn:
        check(conn.execute(select(sqlalchemy.func.count()).select_from(orders)).scalar() == 400,
              "sqlalchemy: all 400 rows committed")

    try:
        with engine.begin() as conn:
            conn.execute(orders.insert(), {"id": 0, "client": 0, "note": "dup"})
        check(False, "sqlalchemy: IntegrityError on a duplicate key")
    except exc.IntegrityError:
        check(True, "sqlalchemy: IntegrityError on a duplicate key")
    with engine.connect() as conn:
        check(conn.execute(text("SELECT 'still fine'")).scalar() == "still fine",
              "sqlalchemy: the pool works after the failed transaction")

    with engine.connect() as conn:
        rows = conn.execute(select(orders.c.id).where(orders.c.client == 3)
                            .order_by(orders.c.id)).fetchall()
        check([r[0] for r in rows] == list(range(3000, 3050)), "sqlalchemy: ORDER BY select")
    meta.drop_all(engine)
    engine.dispose()


def main():
    for name, fn in (("psycopg2", psycopg2_checks), ("sqlalchemy", sqlalchemy_checks)):
        try:
            fn()
        except Exception:
            check(False, "%s: ran without an exception" % name, traceback.format_exc())
    return 0


if __name__ == "__main__":
    sys.exit(main())
