#!/usr/bin/python3
"""psycopg 3 with prepare_threshold=0 through pglease in transaction mode.

Every query is prepared (a named protocol-level statement) on its first use, so
running the same parameterised query many times from a few connections on a
small pool uses each statement on servers it was not prepared on.
Environment: PGL_HOST, PGL_PORT, PGL_USER, PGL_PASSWORD, PGL_DB, PGL_POOL_SIZE.
Prints "ok - ..." / "not ok - ..." lines and "# ..." diagnostics.
"""
import os
import sys
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


def main():
    import psycopg

    print("# psycopg %s" % psycopg.__version__, flush=True)
    conninfo = "host=%s port=%s user=%s password=%s dbname=%s sslmode=disable connect_timeout=10" % (
        os.environ["PGL_HOST"], os.environ["PGL_PORT"], os.environ["PGL_USER"],
        os.environ["PGL_PASSWORD"], os.environ["PGL_DB"])
    pool_size = int(os.environ.get("PGL_POOL_SIZE", "2"))

    conns = [psycopg.connect(conninfo, prepare_threshold=0) for _ in range(3)]
    holder = psycopg.connect(conninfo)
    query = "SELECT %s::int * 2 AS v, pg_backend_pid() AS pid"

    ok = True
    seen = [set() for _ in conns]
    bad = []
    for i in range(60):
        k = i % len(conns)
        conn = conns[k]
        hold = i % 4 == 0
        if hold:
            # keep one server busy in a transaction: the query must use another one
            holder.execute("SELECT 1")
        try:
            with conn.cursor() as cur:
                cur.execute(query, (i,))
                v, pid = cur.fetchone()
            conn.commit()
            seen[k].add(pid)
            if v != 2 * i:
                ok = False
                bad.append("iteration %d: %r" % (i, v))
        except Exception as e:
            ok = False
            bad.append("iteration %d: %s" % (i, e))
            conn.rollback()
        if hold:
            holder.commit()
    check(ok, "psycopg3: the same prepared query 60 times from 3 connections, all right",
          "\n".join(bad[:5]))
    moved = sum(1 for s in seen if len(s) > 1)
    check(moved >= 1,
          "psycopg3: statements were executed on more than one backend (%d connections)" % moved)
    allpids = set().union(*seen)
    check(1 <= len(allpids) <= pool_size,
          "psycopg3: at most pool_size=%d backends (%d)" % (pool_size, len(allpids)))

    # Autocommit connections, several statements, NULL parameters, executemany.
    ac = psycopg.connect(conninfo, prepare_threshold=0, autocommit=True)
    ac.execute("DROP TABLE IF EXISTS pg3_t")
    ac.execute("CREATE TABLE pg3_t (id int, note text)")
    with ac.cursor() as cur:
        cur.executemany("INSERT INTO pg3_t VALUES (%s, %s)",
                        [(i, None if i % 5 == 0 else "n%d" % i) for i in range(200)])
    ok = True
    for i in range(50):
        if i % 3 == 0:
            holder.execute("SELECT 1")
        row = ac.execute("SELECT count(*), count(note) FROM pg3_t WHERE id < %s", (i * 4,)).fetchone()
        want = (i * 4, i * 4 - (i * 4 + 4) // 5) if i else (0, 0)
        if row != want:
            ok = False
            print("# i=%d got %r want %r" % (i, row, want), flush=True)
        if i % 3 == 0:
            holder.commit()
    check(ok, "psycopg3: autocommit, executemany and a counted query across servers")

    # Errors keep the connection usable and do not break the prepared statements.
    try:
        conns[0].execute("SELECT %s::int / 0", (1,))
        check(False, "psycopg3: division by zero raises")
    except psycopg.errors.DivisionByZero:
        conns[0].rollback()
        check(True, "psycopg3: division by zero raises DivisionByZero")
    v = conns[0].execute(query, (21,)).fetchone()[0]
    conns[0].commit()
    check(v == 42, "psycopg3: the prepared query still works after an error")

    # Explicit transaction blocks with the prepared statement inside.
    with conns[1].transaction():
        a = conns[1].execute(query, (1,)).fetchone()
        holder.execute("SELECT 1")
        b = conns[1].execute(query, (2,)).fetchone()
        holder.commit()
    check(a[0] == 2 and b[0] == 4 and a[1] == b[1],
          "psycopg3: two executions inside one transaction share one backend")
    ac.execute("DROP TABLE pg3_t")
    for c in conns + [holder, ac]:
        c.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        check(False, "psycopg3: ran without an exception", traceback.format_exc())
        sys.exit(0)
