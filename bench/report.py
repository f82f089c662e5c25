"""Results of a bench.py run as markdown and a gnuplot bar chart of the ratios."""
import os
import statistics
import subprocess

# metric key, label in the table, short label in the chart, unit, better
ROWS = [
    ("w1", "1. `-S` simple protocol, 50 clients", "1 simple", "tps", "higher"),
    ("w2", "2. `-S -M extended`, 50 clients", "2 extended", "tps", "higher"),
    ("w3", "3. `-S -M prepared`, 50 clients", "3 prepared", "tps", "higher"),
    ("w4", "4. `-S -C` new connection per transaction, 20 clients", "4 connect/tx", "tps",
     "higher"),
    ("w5", "5. `-S` 1,000 clients on a pool of 20: throughput", "5 1000 cl.", "tps", "higher"),
    ("p50", "5. ... latency p50 (pgbench -l)", "5 p50 (low=good)", "ms", "lower"),
    ("p99", "5. ... latency p99 (pgbench -l)", "5 p99 (low=good)", "ms", "lower"),
    ("conn1000", "5. ... pgbench initial connection time, 1,000 clients", "5 connect 1000 (low=good)",
     "ms", "lower"),
    ("served", "5. ... clients that completed at least one transaction", "5 clients served",
     "clients", "higher"),
    ("cpu", "6. pooler CPU per 100,000 transactions (workload 1)", "6 CPU/100k tx (low=good)",
     "s", "lower"),
    ("cpu_w4", "6. ... the same during workload 4 (a login per transaction)", "6 CPU, -C (low=good)",
     "s", "lower"),
    ("cpu_w5", "6. ... the same during workload 5 (1,000 clients)", "6 CPU, 1000 cl. (low=good)",
     "s", "lower"),
    ("mem", "7. pooler RSS growth per idle client (10,000 clients)", "7 RSS/client (low=good)",
     "bytes", "lower"),
]

NA_DIRECT = {
    "w5": "n/a (max_connections 300)",
    "p50": "n/a",
    "p99": "n/a",
    "conn1000": "n/a",
    "served": "n/a",
    "cpu": "n/a (no pooler)",
    "cpu_w4": "n/a (no pooler)",
    "cpu_w5": "n/a (no pooler)",
    "mem": "n/a (no pooler)",
}

TARGETS = ("pglease", "pgbouncer", "direct")


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "tps":
        return "{:,.0f}".format(v)
    if unit == "ms":
        return "%.2f" % v if v < 100 else "{:,.0f}".format(v)
    if unit == "s":
        return "%.2f" % v
    if unit in ("bytes", "clients"):
        return "{:,.0f}".format(v)
    return str(v)


def median_of(vals):
    good = [v for v in vals if v is not None]
    return statistics.median(good) if good else None


def cell(suite, key, target, unit):
    vals = suite.values.get(key, {}).get(target)
    fails = suite.failures.get(key, {}).get(target, [])
    if vals is None:
        return NA_DIRECT.get(key, "n/a") if target == "direct" else "n/a", None
    med = median_of(vals)
    text = fmt(med, unit)
    if med is None:
        text = "n/a (fails: %s)" % (fails[0] if fails else "no result")
    elif fails:
        bad = sum(1 for v in vals if v is None)
        text += " (%s%s)" % ("%d of %d rounds failed: " % (bad, len(vals)) if bad else "",
                              fails[0])
    if key == "w3" and med is not None:
        failed = suite.values.get("w3_failed", {}).get(target, [])
        if failed:
            text += ", failed tx: %d" % sum(failed)
    return text, med


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def rfmt(r):
    return "n/a" if r is None else "%.2f" % r


def write_chart(out_dir, stem, chart_rows, rounds):
    dat = os.path.join(out_dir, stem + ".dat")
    png = os.path.join(out_dir, stem + ".png")
    vals = [r for _, rb, rd in chart_rows for r in (rb, rd) if r is not None]
    ymax = min(max(vals + [1.0]) * 1.2, 4.0)
    with open(dat, "w") as f:
        for label, rb, rd in chart_rows:
            cols = []
            for r in (rb, rd):
                cols.append("NaN" if r is None else "%.4f" % r)
            for r in (rb, rd):
                cols.append("NaN" if r is None else "%.4f" % min(r, ymax * 0.86))
            f.write("%s\t%s\n" % (label, "\t".join(cols)))
    script = """
set terminal pngcairo size 1200,620 font "sans,10"
set output '{png}'
set title "pglease ÷ PgBouncer and pglease ÷ PostgreSQL direct, median of {rounds} round(s)\\nthroughput: above 1 = pglease better; '(low=good)' rows: below 1 = pglease better; missing bar = n/a"
set datafile separator "\\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:{ymax}]
set ylabel "ratio"
set xtics rotate by 30 right scale 0 font ",9"
set grid ytics
set key top right
set bmargin 7
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 lc rgb "black" front
plot '{dat}' using 2:xtic(1) title "pglease / PgBouncer" lc rgb "#1f77b4", \\
     '' using 3 title "pglease / direct" lc rgb "#ff7f0e", \\
     '' using ($0-0.1667):4:(sprintf("%.2f", $2)) with labels offset 0,0.7 font ",8" notitle, \\
     '' using ($0+0.1667):5:(sprintf("%.2f", $3)) with labels offset 0,0.7 font ",8" notitle
""".format(png=png, dat=dat, ymax="%.2f" % ymax, rounds=rounds)
    gp = os.path.join(out_dir, stem + ".gp")
    with open(gp, "w") as f:
        f.write(script)
    rc = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    os.unlink(gp)
    os.unlink(dat)
    if rc.returncode != 0:
        return None, rc.stderr.strip()
    return png, None


def write(out_dir, stem, suite, info, workloads, perf_files):
    rounds = suite.prof["rounds"]
    lines = []
    add = lines.append
    add("# pglease benchmark: %s" % stem)
    add("")
    add("pglease vs PgBouncer vs PostgreSQL direct on one machine, transaction pooling, "
        "pool size 20, median of %d round(s) with the target order rotated each round. "
        "Ratios are pglease ÷ other: for throughput above 1 means pglease is faster; for "
        "latency, CPU and memory below 1 means pglease uses less." % rounds)
    add("")
    add("| workload | unit | better | pglease | PgBouncer | direct | pglease/PgBouncer | "
        "pglease/direct |")
    add("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    chart = []
    for key, label, short, unit, better in ROWS:
        texts, meds = {}, {}
        for t in TARGETS:
            texts[t], meds[t] = cell(suite, key, t, unit)
        rb = ratio(meds["pglease"], meds["pgbouncer"])
        rd = ratio(meds["pglease"], meds["direct"])
        if key != "served":
            chart.append((short, rb, rd))
        add("| %s | %s | %s | %s | %s | %s | %s | %s |"
            % (label, unit, better, texts["pglease"], texts["pgbouncer"], texts["direct"],
               rfmt(rb), rfmt(rd)))
    add("")
    png, err = write_chart(out_dir, stem, chart, rounds)
    if png:
        add("![ratios](%s)" % os.path.basename(png))
    else:
        add("(chart failed: %s)" % err)
    add("")
    ok = suite.values.get("mem_ok", {})
    if ok:
        add("Idle clients that completed login in the memory test, per round: %s."
            % "; ".join("%s %s" % (t, ", ".join("{:,}".format(v) for v in ok[t])) for t in ok))
        add("")

    add("## Machine and versions")
    add("")
    add("| | |")
    add("| --- | --- |")
    for k, v in info:
        add("| %s | %s |" % (k, v.replace("|", "\\|")))
    add("")

    add("## What ran")
    add("")
    add("- One throwaway PostgreSQL 15 cluster (fsync=off, synchronous_commit=off, "
        "full_page_writes=off, shared_buffers=256MB, max_connections=300), `pgbench -i -s 10`.")
    add("- pglease and PgBouncer read the same generated pgbouncer.ini settings: "
        "`pool_mode = transaction`, `default_pool_size = 20`, `max_client_conn = 11000`, "
        "`auth_type = trust` with an auth_file, `log_connections = 0`, "
        "`log_disconnections = 0`, all else default; both run as the postgres OS user, "
        "listen on 127.0.0.1 and reach PostgreSQL over its unix socket. "
        "Direct runs go to PostgreSQL over TCP on 127.0.0.1.")
    add("- Every pgbench run: `pgbench -n -T %d -h 127.0.0.1 -p PORT -U postgres bench` plus:"
        % suite.prof["duration"])
    for wl in workloads:
        add("  - %s: `%s`%s" % (wl["title"], " ".join(wl["args"]),
                                " `-l` (per-transaction log)" if wl.get("latency_log") else ""))
    add("- Each round restarts both poolers, warms each target up (%d s of `-S -c 20`), "
        "runs the memory test on each pooler, then every workload against each target in the "
        "round's order." % suite.prof["warmup"])
    add("- 6: utime+stime of the pooler process from /proc/PID/stat around each workload-1 "
        "run (also 4 and 5), divided by transactions/100,000. CPU time is less disturbed than "
        "throughput by other load on the machine.")
    add("- 7: VmRSS of the pooler before and after %s idle clients (bench/idle_clients.py: "
        "raw sockets, StartupMessage, trust, wait for ReadyForQuery, keep open; sources "
        "127.0.0.2-9) divided by the number that logged in." % "{:,}".format(suite.prof["idle"]))
    add("")

    add("## Per round")
    add("")
    add("| metric | target | %s |" % " | ".join("round %d" % (i + 1) for i in range(rounds)))
    add("| --- | --- | %s |" % " | ".join("---:" for _ in range(rounds)))
    for key, label, short, unit, better in ROWS + [("w3_failed", "3. failed transactions",
                                                    "", "", "")]:
        for t in TARGETS:
            vals = suite.values.get(key, {}).get(t)
            if vals is None:
                continue
            add("| %s | %s | %s |" % (label, t, " | ".join(
                fmt(v, unit) if unit else str(v) for v in vals)))
        mine = suite.values.get(key, {}).get("pglease")
        for other in ("pgbouncer", "direct"):
            theirs = suite.values.get(key, {}).get(other)
            if not unit or mine is None or theirs is None:
                continue
            add("| %s | *pglease/%s* | %s |" % (label, other, " | ".join(
                "*%s*" % rfmt(ratio(a, b)) for a, b in zip(mine, theirs))))
    add("")
    add("Per-round ratios compare runs made back to back, so they are the least "
        "affected by drift; the ratio columns of the main table divide medians.")
    add("")

    add("## Failures, crashes and warnings")
    add("")
    if not suite.events:
        add("None.")
    for title, details in suite.events:
        add("- **%s**" % title)
        add("")
        add("  ```")
        for d in details:
            add("  " + d)
        add("  ```")
    add("")
    if perf_files:
        add("## Profiles")
        add("")
        for p in perf_files:
            add("- [%s](%s)" % (p, p))
        add("")
    md = os.path.join(out_dir, stem + ".md")
    with open(md, "w") as f:
        f.write("\n".join(lines))
    return md
