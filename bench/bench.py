#!/usr/bin/python3
"""pglease benchmark suite: pglease vs PgBouncer vs PostgreSQL direct.

Run through bench/run.sh (which installs the packages this needs); see
bench/README.md for what is measured and how.  Only the standard library.

One throwaway PostgreSQL cluster, one pglease and one PgBouncer with the
same pgbouncer.ini settings, pgbench against each target in turn, round
after round with the order rotated, so that drift (other load on the
machine, caches, the cluster aging) hits every target alike.  Medians over
rounds go into bench/results/<date>-<sha>.md with a gnuplot chart.
"""
import argparse
import datetime
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.dont_write_bytecode = True  # keep bench/ free of __pycache__

import idle_clients  # noqa: E402
import report  # noqa: E402

PGBIN = "/usr/lib/postgresql/15/bin"
DBNAME = "bench"
DBUSER = "postgres"
POOL_SIZE = 20
MAX_CLIENT_CONN = 11000
SCALE = 10
IDLE_SOURCES = tuple("127.0.0.%d" % i for i in range(2, 10))

PROFILES = {
    # rounds, seconds per pgbench run, warm-up seconds, idle clients
    "full": dict(rounds=3, duration=15, warmup=2, idle=10000),
    "quick": dict(rounds=1, duration=5, warmup=1, idle=10000),
}

# Every workload is select-only (-S) so that what differs between targets is
# the path to the server, not lock contention in the tpcb-like script.
WORKLOADS = [
    dict(key="w1", title="1. -S simple protocol, 50 clients",
         args=["-S", "-M", "simple", "-c", "50", "-j", "2"]),
    dict(key="w2", title="2. -S -M extended, 50 clients",
         args=["-S", "-M", "extended", "-c", "50", "-j", "2"]),
    dict(key="w3", title="3. -S -M prepared, 50 clients",
         args=["-S", "-M", "prepared", "-c", "50", "-j", "2"]),
    dict(key="w4", title="4. -S -C (new connection per transaction), 20 clients",
         args=["-S", "-C", "-c", "20", "-j", "2"]),
    dict(key="w5", title="5. -S 1,000 clients on a pool of 20",
         args=["-S", "-c", "1000", "-j", "2"], poolers_only=True, latency_log=True),
]

# Pooler CPU seconds per 100,000 transactions are reported for these workloads.
CPU_METRICS = {"w1": "cpu", "w4": "cpu_w4", "w5": "cpu_w5"}

TARGETS = ("pglease", "pgbouncer", "direct")
POOLERS = ("pglease", "pgbouncer")

LOG = None


def log(msg):
    line = "%s %s" % (time.strftime("%H:%M:%S"), msg)
    print(line, file=sys.stderr, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


def die(msg):
    log("FATAL: " + msg)
    raise SystemExit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def as_pg_user():
    """Popen keyword arguments that run a child as the postgres OS user when root."""
    if os.geteuid() != 0:
        return {}
    return dict(user="postgres", group="postgres", extra_groups=[])


def run(cmd, logfile, timeout=600, cwd=None, pg_user=False, env=None):
    """Run CMD with output appended to LOGFILE; returns the exit status."""
    with open(logfile, "ab") as out:
        out.write(("$ %s\n" % " ".join(cmd)).encode())
        out.flush()
        kw = as_pg_user() if pg_user else {}
        try:
            return subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                  timeout=timeout, env=env, **kw).returncode
        except subprocess.TimeoutExpired:
            out.write(b"\n(timed out)\n")
            return -999


def tail(path, n=20):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return lines[-n:]
    except OSError:
        return []


def capture(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ---- /proc ---------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of PID in seconds, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    rest = s[s.rfind(")") + 2:].split()
    ticks = int(rest[11]) + int(rest[12])  # fields 14 and 15
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


# ---- build ---------------------------------------------------------------------

def git(*args):
    return capture(["git", "-C", ROOT] + list(args))


def build_pglease(work, rev):
    """Build pglease (-O2 -g, no sanitizer) from the checkout, out of tree.

    The sources are copied first (the working tree's tracked and untracked
    files, or `git archive REV`) so that autoreconf never writes into the
    checkout other people are editing.
    """
    src = os.path.join(work, "src")
    bld = os.path.join(work, "build")
    blog = os.path.join(work, "build.log")
    os.makedirs(src)
    os.makedirs(bld)
    os.chmod(bld, 0o755)  # the poolers run as postgres and must reach the binary
    if rev:
        rc = subprocess.run("git -C %s archive %s | tar -x -C %s" % (ROOT, rev, src),
                            shell=True).returncode
        if rc != 0:
            die("git archive %s failed" % rev)
    else:
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "-co", "--exclude-standard"],
                             capture_output=True, check=True).stdout
        for rel in out.decode().split("\0"):
            if not rel or rel.startswith("bench/"):
                continue
            path = os.path.join(ROOT, rel)
            if not os.path.isfile(path):
                continue  # deleted in the working tree
            os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
            shutil.copy2(path, os.path.join(src, rel))
    log("building pglease in %s (log %s)" % (bld, blog))
    steps = [
        (["autoreconf", "-fi"], src),
        ([os.path.join(src, "configure"), "CFLAGS=-O2 -g"], bld),
        (["make", "-j%d" % max(2, os.cpu_count() or 2), "pglease"], bld),
    ]
    for cmd, cwd in steps:
        if run(cmd, blog, timeout=900, cwd=cwd) != 0:
            print("\n".join(tail(blog, 40)), file=sys.stderr)
            die("build step failed: %s%s" % (" ".join(cmd), "" if rev else
                " (building the working tree; --rev HEAD builds the last commit instead)"))
    return os.path.join(bld, "pglease")


# ---- PostgreSQL ----------------------------------------------------------------

class Cluster:
    def __init__(self, work):
        self.dir = os.path.join(work, "pg")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(work, "postgres.log")
        self.setup_log = os.path.join(work, "pg-setup.log")
        self.port = free_port()
        self.started = False

    def pg(self, prog):
        return os.path.join(PGBIN, prog)

    def start(self):
        os.makedirs(self.sock)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
            open(self.log, "a").close()
            shutil.chown(self.log, "postgres", "postgres")
        log("initdb (PostgreSQL on 127.0.0.1:%d, socket %s)" % (self.port, self.sock))
        rc = run([self.pg("initdb"), "-D", self.data, "-U", DBUSER, "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync"], self.setup_log, timeout=180, pg_user=True)
        if rc != 0:
            print("\n".join(tail(self.setup_log, 30)), file=sys.stderr)
            die("initdb failed")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# pglease bench: throwaway cluster tuned for benchmarking\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "port = %d\n"
                    "unix_socket_directories = '%s'\n"
                    "max_connections = 300\n"
                    "shared_buffers = 256MB\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "log_min_messages = warning\n"
                    "log_connections = off\n" % (self.port, self.sock))
        rc = run([self.pg("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60", "start"],
                 self.setup_log, timeout=90, pg_user=True)
        if rc != 0:
            print("\n".join(tail(self.log, 30)), file=sys.stderr)
            die("pg_ctl start failed")
        self.started = True
        conn = ["-h", "127.0.0.1", "-p", str(self.port), "-U", DBUSER]
        if run([self.pg("psql")] + conn + ["-X", "-q", "-c", "CREATE DATABASE %s" % DBNAME,
                                           "postgres"], self.setup_log, timeout=60) != 0:
            die("CREATE DATABASE failed (see %s)" % self.setup_log)
        log("pgbench -i -s %d" % SCALE)
        if run([self.pg("pgbench"), "-i", "-q", "-s", str(SCALE)] + conn + [DBNAME],
               self.setup_log, timeout=600) != 0:
            print("\n".join(tail(self.setup_log, 30)), file=sys.stderr)
            die("pgbench -i failed")

    def stop(self):
        if self.started:
            run([self.pg("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"],
                self.setup_log, timeout=60, pg_user=True)
            self.started = False


# ---- poolers -------------------------------------------------------------------

class Target:
    """Something pgbench connects to: PostgreSQL itself or a pooler in front of it."""

    def __init__(self, name, port):
        self.name = name
        self.port = port
        self.proc = None

    @property
    def pid(self):
        return None

    def alive(self):
        return True

    def log_offset(self):
        return 0

    def log_since(self, offset):
        return []


class Pooler(Target):
    def __init__(self, name, work, cmd_prefix, cluster):
        super().__init__(name, free_port())
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.ini = os.path.join(self.dir, name + ".ini")
        self.logfile = os.path.join(self.dir, name + ".log")
        self.stderr = os.path.join(self.dir, name + ".stderr")
        self.cmd = cmd_prefix + [self.ini]
        self.starts = 0
        # PgBouncer 1.18 ends a SIGTERM "fast exit" with status 1.
        self.clean_exits = ("exited with status 0",) if name == "pglease" else (
            "exited with status 0", "exited with status 1")
        self.write_config(cluster)

    def write_config(self, cluster):
        """The same pgbouncer.ini settings for both poolers; only paths and port differ."""
        userlist = os.path.join(self.dir, "userlist.txt")
        with open(userlist, "w") as f:
            f.write('"%s" ""\n' % DBUSER)
        with open(self.ini, "w") as f:
            f.write("; generated by bench/bench.py\n"
                    "[databases]\n"
                    "%s = host=%s port=%d dbname=%s\n\n"
                    "[pgbouncer]\n"
                    "listen_addr = 127.0.0.1\n"
                    "listen_port = %d\n"
                    "unix_socket_dir =\n"
                    "auth_type = trust\n"
                    "auth_file = %s\n"
                    "pool_mode = transaction\n"
                    "default_pool_size = %d\n"
                    "max_client_conn = %d\n"
                    "logfile = %s\n"
                    "pidfile = %s\n"
                    "log_connections = 0\n"
                    "log_disconnections = 0\n"
                    % (DBNAME, cluster.sock, cluster.port, DBNAME, self.port, userlist, POOL_SIZE,
                       MAX_CLIENT_CONN, self.logfile, os.path.join(self.dir, self.name + ".pid")))
        if os.geteuid() == 0:
            for p in (self.dir, self.ini, userlist):
                shutil.chown(p, "postgres", "postgres")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        with open(self.stderr, "ab") as err:
            err.write(("---- %s $ %s\n" % (time.strftime("%H:%M:%S"), " ".join(self.cmd))).encode())
            err.flush()
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         cwd=self.dir, **as_pg_user())
        self.starts += 1
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not self.alive():
                break
            if port_open(self.port):
                return True
            time.sleep(0.05)
        log("%s did not come up: %s" % (self.name, self.exit_text()))
        for line in tail(self.stderr, 15) + tail(self.logfile, 15):
            log("  | " + line)
        return False

    def exit_text(self):
        if self.proc is None:
            return "not started"
        rc = self.proc.poll()
        if rc is None:
            return "running"
        if rc < 0:
            return "killed by signal %d (%s)" % (-rc, signal.Signals(-rc).name)
        return "exited with status %d" % rc

    def stop(self):
        """SIGTERM, then SIGKILL after 10 s; returns a description of how it ended."""
        if self.proc is None:
            return "not running"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "did not stop within 10s of SIGTERM; killed"
        text = self.exit_text()
        self.proc = None
        return text

    def log_offset(self):
        try:
            return os.path.getsize(self.logfile)
        except OSError:
            return 0

    def log_since(self, offset):
        try:
            with open(self.logfile, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []


def problem_lines(lines, limit=8):
    """The WARNING/ERROR/FATAL lines of a pooler log, repeats collapsed."""
    seen = {}
    order = []
    for line in lines:
        if not re.search(r"\b(WARNING|ERROR|FATAL|PANIC)\b|assert|Assertion", line):
            continue
        key = re.sub(r"0x[0-9a-f]+|\d+", "N", line.split(" ", 3)[-1])
        if key not in seen:
            seen[key] = [line, 0]
            order.append(key)
        seen[key][1] += 1
    out = []
    for key in order[:limit]:
        line, n = seen[key]
        out.append(line if n == 1 else "%s   [x%d similar]" % (line, n))
    if len(order) > limit:
        out.append("... and %d other kinds of lines" % (len(order) - limit))
    return out


# ---- pgbench -------------------------------------------------------------------

def parse_pgbench(stdout, stderr):
    r = {}
    for key, pat, conv in (
        ("tps", r"^tps = ([\d.]+)", float),
        ("processed", r"number of transactions actually processed: (\d+)", int),
        ("failed", r"number of failed transactions: (\d+)", int),
        ("lat_avg", r"latency average = ([\d.]+) ms", float),
        ("conn_ms", r"initial connection time = ([\d.]+) ms", float),
    ):
        m = re.search(pat, stdout, re.M)
        if m:
            r[key] = conv(m.group(1))
    r["aborted"] = len(re.findall(r"client \d+ (?:script \d+ )?aborted", stderr))
    r["run_aborted"] = "Run was aborted" in stdout + stderr
    msgs = {}
    for line in stderr.splitlines():
        if re.search(r"error|FATAL|aborted|could not|failed", line, re.I):
            key = re.sub(r"client \d+", "client N", line.strip())
            key = re.sub(r"P_\d+", "P_N", key)
            msgs[key] = msgs.get(key, 0) + 1
    r["messages"] = sorted(msgs.items(), key=lambda kv: -kv[1])
    return r


def latency_percentiles(prefix):
    """p50, p99 (ms) and the number of distinct clients over pgbench -l logs PREFIX.*."""
    lats = []
    clients = set()
    d = os.path.dirname(prefix)
    base = os.path.basename(prefix) + "."
    for name in os.listdir(d):
        if not name.startswith(base):
            continue
        path = os.path.join(d, name)
        with open(path) as f:
            for line in f:
                parts = line.split()
                # client_id transaction_no time script_no time_epoch time_us [lag]
                if len(parts) >= 6 and parts[2].isdigit():
                    lats.append(int(parts[2]))
                    clients.add(parts[0])
        os.unlink(path)
    if not lats:
        return None, None, 0
    served = len(clients)
    lats.sort()

    def pct(p):
        return lats[min(len(lats) - 1, int(p / 100.0 * len(lats)))] / 1000.0

    return pct(50), pct(99), served


class Suite:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.prof = dict(PROFILES["quick" if args.quick else "full"])
        if args.rounds:
            self.prof["rounds"] = args.rounds
        if args.duration:
            self.prof["duration"] = args.duration
        self.runs_dir = os.path.join(work, "runs")
        os.makedirs(self.runs_dir)
        # values[metric][target] = [per-round value or None]
        self.values = {}
        # failures[metric][target] = [short text]
        self.failures = {}
        self.events = []  # crashes, restarts, anomalies: (title, [detail lines])
        self.seq = 0
        self.loads = []  # 1-minute load average before each pgbench run

    # -- bookkeeping

    def record(self, metric, target, value, failure=None):
        self.values.setdefault(metric, {}).setdefault(target, []).append(value)
        if failure:
            self.failures.setdefault(metric, {}).setdefault(target, []).append(failure)

    def event(self, title, details):
        log("!! " + title)
        for d in details:
            log("   " + d)
        self.events.append((title, details))

    def check_pooler(self, t, where):
        """After a step: if the pooler died, record it with its last words and restart it."""
        if not isinstance(t, Pooler) or t.alive():
            return
        how = t.exit_text()
        details = ["%s %s during %s" % (t.name, how, where), "stderr tail:"]
        details += ["    " + x for x in tail(t.stderr, 12)]
        details += ["log tail:"] + ["    " + x for x in tail(t.logfile, 25)]
        self.event("%s died during %s" % (t.name, where), details)
        t.stop()
        if not t.start():
            die("%s does not restart" % t.name)

    # -- pgbench

    def pgbench(self, t, wl_args, seconds, tag, latency_log=False, cpu=False, grace=25):
        """One pgbench -T SECONDS run against T; killed if not done GRACE s after that."""
        self.seq += 1
        stem = os.path.join(self.runs_dir, "%03d-%s-%s" % (self.seq, tag, t.name))
        cmd = [os.path.join(PGBIN, "pgbench"), "-n", "-T", str(seconds)] + wl_args
        if latency_log:
            cmd += ["-l", "--log-prefix", stem + ".txlog"]
        cmd += ["-h", "127.0.0.1", "-p", str(t.port), "-U", DBUSER, DBNAME]
        with open("/proc/loadavg") as f:
            self.loads.append(float(f.read().split()[0]))
        off = t.log_offset()
        cpu0 = cpu_seconds(t.pid) if cpu and t.alive() and t.pid else None
        t0 = time.monotonic()
        with open(stem + ".out", "wb") as out, open(stem + ".err", "wb") as err:
            p = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=self.runs_dir)
            try:
                rc = p.wait(timeout=seconds + grace)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                rc = "hung (killed %d s after the end of its %d s run)" % (grace, seconds)
        wall = time.monotonic() - t0
        cpu1 = cpu_seconds(t.pid) if cpu0 is not None and t.alive() else None
        with open(stem + ".out", errors="replace") as f:
            stdout = f.read()
        with open(stem + ".err", errors="replace") as f:
            stderr = f.read()
        r = parse_pgbench(stdout, stderr)
        r.update(rc=rc, cmd=" ".join(cmd), wall=wall, stem=stem,
                 pooler_log=problem_lines(t.log_since(off)))
        r["ok"] = (rc == 0 and not r["aborted"] and not r["run_aborted"]
                   and r.get("processed", 0) > 0 and "tps" in r)
        if cpu1 is not None:
            r["cpu"] = cpu1 - cpu0
        if latency_log:
            r["p50"], r["p99"], r["served"] = latency_percentiles(stem + ".txlog")
        return r

    def describe_failure(self, t, r):
        bits = []
        if isinstance(r["rc"], str):
            bits.append(r["rc"])
        elif r["rc"] != 0:
            bits.append("pgbench exit %d" % r["rc"])
        if r["aborted"]:
            bits.append("%d clients aborted" % r["aborted"])
        if r.get("failed"):
            bits.append("%d failed tx" % r["failed"])
        bits.append("{:,} tx done".format(r.get("processed", 0)))
        return ", ".join(bits)

    def failure_details(self, t, r):
        d = ["command: " + r["cmd"], "exit status: %s; %s" % (r["rc"], self.describe_failure(t, r))]
        if r["messages"]:
            d.append("pgbench stderr (repeats collapsed):")
            d += ["    [x%d] %s" % (n, m) for m, n in r["messages"][:6]]
        if r["pooler_log"]:
            d.append("%s log during the run:" % t.name)
            d += ["    " + x for x in r["pooler_log"]]
        return d

    # -- the steps of a round

    def warm_up(self, order):
        for t in order:
            r = self.pgbench(t, ["-S", "-c", "20", "-j", "2"], self.prof["warmup"], "warmup")
            if not r["ok"]:
                self.event("warm-up against %s failed" % t.name, self.failure_details(t, r))
            self.check_pooler(t, "warm-up")

    def memory(self, t, rnd):
        n = self.prof["idle"]
        # One short pgbench so the pool has its server connections and the
        # parameters a pooler needs before it can finish a client login.
        self.pgbench(t, ["-S", "-c", "1", "-j", "1"], 1, "mem-prime")
        time.sleep(0.5)
        pid = t.pid
        rss0, fds0 = rss_kib(pid), fd_count(pid)
        off = t.log_offset()
        log("  %s: opening %d idle clients (RSS %d KiB, %d fds)" % (t.name, n, rss0, fds0))
        res = idle_clients.open_idle("127.0.0.1", t.port, n, DBUSER, DBNAME, IDLE_SOURCES)
        time.sleep(1.0)
        alive = t.alive()
        rss1 = rss_kib(pid) if alive else 0
        fds1 = fd_count(pid) if alive else -1
        ok = len(res.ready)
        log("  %s: %d ready, %d failed in %.1fs; RSS %d KiB, %d fds"
            % (t.name, ok, res.failed, res.elapsed, rss1, fds1))
        res.close()
        time.sleep(1.0)
        per = (rss1 - rss0) * 1024.0 / ok if ok and alive else None
        failure = None
        if ok < n or not alive:
            failure = "only %d of %d clients logged in" % (ok, n)
            d = ["%s: %d of %d idle clients logged in (%.1fs); pooler %s; fds %d -> %d"
                 % (t.name, ok, n, res.elapsed, t.exit_text(), fds0, fds1)]
            d += ["    [x%d] %s" % (c, m) for m, c in sorted(res.errors.items(), key=lambda kv: -kv[1])]
            lines = problem_lines(t.log_since(off))
            if lines:
                d.append("%s log:" % t.name)
                d += ["    " + x for x in lines]
            self.event("memory test: %s took only %d of %d clients (round %d)"
                       % (t.name, ok, n, rnd + 1), d)
        self.record("mem", t.name, per, failure)
        self.record("mem_ok", t.name, ok)
        self.check_pooler(t, "the memory test (round %d)" % (rnd + 1))

    def workload(self, wl, t, rnd):
        key = wl["key"]
        r = self.pgbench(t, wl["args"], self.prof["duration"], "r%d-%s" % (rnd + 1, key),
                         latency_log=wl.get("latency_log", False),
                         cpu=isinstance(t, Pooler))
        summary = ("tps %.0f" % r["tps"]) if "tps" in r else "no tps"
        log("  %s %-9s %s, %d tx, failed %s, aborted %d, rc %s"
            % (key, t.name, summary, r.get("processed", 0), r.get("failed", "?"),
               r["aborted"], r["rc"]))
        if r["ok"]:
            self.record(key, t.name, r["tps"])
        else:
            self.record(key, t.name, None, self.describe_failure(t, r))
            # An expected failure (PgBouncer 1.18 and -M prepared) is still described.
            self.event("%s against %s did not complete cleanly (round %d)"
                       % (wl["title"], t.name, rnd + 1), self.failure_details(t, r))
        if r.get("failed") is not None:
            self.record(key + "_failed", t.name, r["failed"])
        if key in CPU_METRICS and "cpu" in r and r["ok"]:
            self.record(CPU_METRICS[key], t.name, r["cpu"] / (r["processed"] / 1e5))
        if wl.get("latency_log"):
            self.record("p50", t.name, r["p50"] if r["ok"] else None)
            self.record("p99", t.name, r["p99"] if r["ok"] else None)
            self.record("conn1000", t.name, r.get("conn_ms") if r["ok"] else None)
            self.record("served", t.name, r.get("served") if r["ok"] else None)
        if r["ok"] and r["pooler_log"]:
            self.event("%s logged warnings during %s (round %d)" % (t.name, key, rnd + 1),
                       ["command: " + r["cmd"]] + ["    " + x for x in r["pooler_log"]])
        self.check_pooler(t, "%s round %d" % (key, rnd + 1))
        if not r["ok"]:
            self.probe(t, "%s round %d" % (key, rnd + 1))

    def probe(self, t, where):
        """After a failed run: restart a pooler that no longer serves a simple client."""
        if not isinstance(t, Pooler):
            return
        r = self.pgbench(t, ["-S", "-c", "1", "-j", "1"], 1, "probe", grace=10)
        if r["ok"]:
            return
        self.event("%s no longer served a 1-client pgbench after %s; restarted it" % (t.name, where),
                   self.failure_details(t, r))
        t.stop()
        if not t.start():
            die("%s does not restart" % t.name)

    def run_rounds(self, targets):
        rounds = self.prof["rounds"]
        for rnd in range(rounds):
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            log("== round %d/%d, order: %s" % (rnd + 1, rounds, ", ".join(t.name for t in order)))
            for t in order:
                if isinstance(t, Pooler):
                    how = t.stop() if t.proc else None
                    if how and how not in t.clean_exits:
                        self.event("%s stopped badly before round %d" % (t.name, rnd + 1), [how])
                    if not t.start():
                        die("%s does not start" % t.name)
            for t in order:
                if isinstance(t, Pooler) and t.starts == 1 and rnd == 0:
                    lines = problem_lines(t.log_since(0))
                    if lines:
                        self.event("%s logged at start-up" % t.name, lines)
            self.warm_up(order)
            for t in order:
                if isinstance(t, Pooler):
                    self.memory(t, rnd)
            for wl in WORKLOADS:
                for t in order:
                    if wl.get("poolers_only") and not isinstance(t, Pooler):
                        continue
                    self.workload(wl, t, rnd)

    def perf_profile(self, t, wl, out_txt):
        """A flat perf profile (self time) of the pooler during one extra run of WL."""
        data = os.path.join(self.work, "perf-%s-%s.data" % (wl["key"], t.name))
        secs = min(self.prof["duration"], 10)
        rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "999", "-o", data,
                                "-p", str(t.pid), "--", "sleep", str(secs)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = self.pgbench(t, wl["args"], secs + 1, "perf-" + wl["key"],
                         latency_log=wl.get("latency_log", False))
        rec.wait()

        def perf_report(*opts):
            out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children"]
                                 + list(opts), capture_output=True, text=True).stdout
            return [re.sub(r"(\s+-)+\s*$", "", x) for x in out.splitlines()
                    if x.strip() and not x.startswith("#")]

        by_dso = perf_report("--sort", "dso", "--percent-limit", "0.5")
        syms = perf_report("--sort", "dso,symbol", "--percent-limit", "0.1")
        user = [x for x in syms if "[kernel" not in x]
        with open(out_txt, "w") as f:
            f.write("# perf record -e cpu-clock -F 999 -p <%s pid>, %d s, during pgbench %s "
                    "(tps %.0f)\n" % (t.name, secs, " ".join(wl["args"]), r.get("tps", 0)))
            f.write("# percentages are of all samples of the pooler process (self time)\n")
            for title, lines in (("by shared object", by_dso),
                                 ("user-space symbols (top 25)", user[:25]),
                                 ("all symbols (top 30)", syms[:30])):
                f.write("\n## %s\n" % title)
                f.write("\n".join(lines) + "\n")
        os.unlink(data)
        log("perf profile of %s during %s written to %s" % (t.name, wl["key"], out_txt))


def machine_info(pglease_bin, sha):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1024.0 / 1024.0)
    return [
        ("date", datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S %Z").strip()),
        ("pglease", "%s (%s)" % (capture([pglease_bin, "-V"]).splitlines()[0]
                                 if capture([pglease_bin, "-V"]) else "?", sha)),
        ("PgBouncer", capture(["pgbouncer", "--version"]).splitlines()[0]),
        ("PostgreSQL", capture([os.path.join(PGBIN, "postgres"), "--version"])),
        ("pgbench", capture([os.path.join(PGBIN, "pgbench"), "--version"])),
        ("libevent", capture(["pkg-config", "--modversion", "libevent"])),
        ("compiler", capture(["cc", "--version"]).splitlines()[0]),
        ("nproc", str(os.cpu_count())),
        ("CPU", cpu),
        ("memory", mem),
        ("kernel", capture(["uname", "-srm"])),
        ("OS", capture(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])),
        ("load average at start", " ".join(open("/proc/loadavg").read().split()[0:3])),
    ]


def main():
    global LOG
    ap = argparse.ArgumentParser(description="pglease vs PgBouncer vs PostgreSQL benchmark suite")
    ap.add_argument("--quick", action="store_true", help="1 round of 5 s runs (about 2 minutes)")
    ap.add_argument("--rounds", type=int, help="override the number of rounds")
    ap.add_argument("--duration", type=int, help="override seconds per pgbench run")
    ap.add_argument("--rev", help="build this git revision instead of the working tree")
    ap.add_argument("--bin", help="use this pglease binary instead of building one")
    ap.add_argument("--perf", action="store_true",
                    help="after the rounds, profile both poolers with perf during workload 1")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (PostgreSQL data too)")
    ap.add_argument("--out", default=os.path.join(BENCH_DIR, "results"),
                    help="results directory (default bench/results)")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 10100:
        log("warning: descriptor hard limit is %d; the 10,000-client test needs about 10,100" % hard)
    if shutil.which("pgbouncer") is None:
        die("pgbouncer not found: run bench/run.sh, or apt-get install pgbouncer")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            die("running as root but there is no postgres OS user")

    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="pglease-bench.")
    os.chmod(work, 0o755)
    LOG = open(os.path.join(work, "suite.log"), "w")
    log("work directory %s" % work)

    rev = args.rev
    sha = git("rev-parse", "--short", rev or "HEAD") or "unknown"
    if args.bin:
        sha += "-bin"  # a binary from elsewhere: HEAD names the checkout, not the binary
    elif not rev and git("status", "--porcelain", "--", "src", "include",
                                        "configure.ac", "Makefile.am"):
        sha += "-dirty"
    cluster = Cluster(work)
    poolers = []
    suite = None
    try:
        pglease_bin = os.path.abspath(args.bin) if args.bin else build_pglease(work, rev)
        cluster.start()
        pgl = Pooler("pglease", work, [pglease_bin], cluster)
        pgb = Pooler("pgbouncer", work, [shutil.which("pgbouncer")], cluster)
        poolers = [pgl, pgb]
        direct = Target("direct", cluster.port)
        suite = Suite(args, work)
        log("pglease on :%d, PgBouncer on :%d, PostgreSQL on :%d; %d round(s) of %d s runs"
            % (pgl.port, pgb.port, cluster.port, suite.prof["rounds"], suite.prof["duration"]))
        suite.run_rounds([pgl, pgb, direct])

        day = datetime.date.today().isoformat()
        stem = "%s-%s%s" % (day, sha, "-quick" if args.quick else "")
        os.makedirs(args.out, exist_ok=True)
        perf_files = []
        if args.perf:
            for wl in (WORKLOADS[0], WORKLOADS[3], WORKLOADS[4]):
                for t in poolers:
                    path = os.path.join(args.out, "%s-perf-%s-%s.txt" % (stem, wl["key"], t.name))
                    suite.perf_profile(t, wl, path)
                    perf_files.append(os.path.basename(path))
        for t in poolers:
            how = t.stop()
            if how not in t.clean_exits:
                suite.event("%s at the end of the suite: SIGTERM -> %s" % (t.name, how),
                            ["stderr tail:"] + ["    " + x for x in tail(t.stderr, 10)])
        info = machine_info(pglease_bin, sha)
        loads = sorted(suite.loads)
        info.append(("load average (1 min) before each run",
                     "min %.1f, median %.1f, max %.1f on %d CPUs%s"
                     % (loads[0], statistics.median(loads), loads[-1], os.cpu_count(),
                        " (other processes competed for the CPUs)"
                        if statistics.median(loads) > os.cpu_count() + 1 else "")))
        info.append(("suite", "%s: %d round(s), %d s per pgbench run, %d idle clients; took %.0f s"
                     % ("--quick" if args.quick else "full", suite.prof["rounds"],
                        suite.prof["duration"], suite.prof["idle"], time.monotonic() - started)))
        md = report.write(args.out, stem, suite, info, WORKLOADS, perf_files)
        if not args.quick and args.out == os.path.join(BENCH_DIR, "results"):
            shutil.copyfile(md, os.path.join(args.out, "latest.md"))
        log("results: %s" % md)
        with open(md) as f:
            print(f.read())
    finally:
        for t in poolers:
            t.stop()
        cluster.stop()
        if not args.keep:
            shutil.rmtree(os.path.join(work, "pg"), ignore_errors=True)
            shutil.rmtree(os.path.join(work, "src"), ignore_errors=True)
        log("logs kept in %s (took %.0f s)" % (work, time.monotonic() - started))


if __name__ == "__main__":
    main()
