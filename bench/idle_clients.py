#!/usr/bin/python3
"""Open many idle, authenticated PostgreSQL client connections.

Speaks just enough of the v3 protocol over raw non-blocking sockets: sends
a StartupMessage, expects AuthenticationOk (trust auth; any other request is
reported as an error), reads until ReadyForQuery, then leaves the socket
open and idle.  Used by bench.py to measure a pooler's memory per idle
client; runnable alone for experiments:

    python3 bench/idle_clients.py --port 6432 --count 10000 --hold 30

Only the standard library.  Several loopback source addresses (127.0.0.x)
may be given so that ephemeral ports do not run short.
"""
import argparse
import errno
import resource
import selectors
import socket
import struct
import time

PROTOCOL_3_0 = 196608
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def startup_packet(user, database):
    body = struct.pack("!i", PROTOCOL_3_0)
    for key, value in (("user", user), ("database", database)):
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def error_text(body):
    """The M (message) field of an ErrorResponse body, with its SQLSTATE."""
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return "%s: %s" % (fields.get("C", "?????"), fields.get("M", "(no message)"))


class Conn:
    __slots__ = ("sock", "state", "buf", "started")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connecting"
        self.buf = b""
        self.started = time.monotonic()


class IdleClients:
    """Holds the open connections; close() ends them all."""

    def __init__(self):
        self.ready = []  # sockets that reached ReadyForQuery
        self.errors = {}  # message -> count
        self.elapsed = 0.0

    def add_error(self, msg):
        self.errors[msg] = self.errors.get(msg, 0) + 1

    @property
    def failed(self):
        return sum(self.errors.values())

    def close(self):
        for s in self.ready:
            try:
                s.close()
            except OSError:
                pass
        self.ready = []


def open_idle(host, port, count, user="postgres", database="postgres",
              sources=("127.0.0.1",), in_flight=200, conn_timeout=30.0,
              total_timeout=240.0):
    """Open COUNT connections and log them in; returns an IdleClients.

    At most IN_FLIGHT logins run at once.  A connection that fails (connect
    error, ErrorResponse, close before ReadyForQuery, timeout) is counted in
    .errors by message and is not retried.
    """
    packet = startup_packet(user, database)
    sel = selectors.DefaultSelector()
    res = IdleClients()
    t0 = time.monotonic()
    launched = 0
    pending = {}

    def finish(conn, err=None):
        sel.unregister(conn.sock)
        del pending[conn.sock.fileno()]
        if err is None:
            res.ready.append(conn.sock)
        else:
            res.add_error(err)
            conn.sock.close()

    def launch(i):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as e:
            res.add_error("socket(): %s" % e.strerror)
            return
        try:
            s.setblocking(False)
            src = sources[i % len(sources)]
            if src != "127.0.0.1" or len(sources) > 1:
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((src, 0))
            rc = s.connect_ex((host, port))
        except OSError as e:
            res.add_error("connect: %s" % e.strerror)
            s.close()
            return
        if rc not in (0, errno.EINPROGRESS):
            res.add_error("connect: %s" % errno.errorcode.get(rc, rc))
            s.close()
            return
        c = Conn(s)
        pending[s.fileno()] = c
        sel.register(s, selectors.EVENT_WRITE, c)

    while True:
        while launched < count and len(pending) < in_flight:
            launch(launched)
            launched += 1
        if launched >= count and not pending:
            break
        now = time.monotonic()
        if now - t0 > total_timeout:
            for c in list(pending.values()):
                finish(c, "timeout: whole run took over %.0fs" % total_timeout)
            for _ in range(launched, count):
                res.add_error("not started (run timed out)")
            break
        for key, ev in sel.select(timeout=0.5):
            c = key.data
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    finish(c, "connect: %s" % errno.errorcode.get(err, err))
                    continue
                try:
                    c.sock.send(packet)  # 41 bytes: fits any fresh socket buffer
                except OSError as e:
                    finish(c, "send startup: %s" % e.strerror)
                    continue
                c.state = "login"
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                finish(c, "recv: %s" % e.strerror)
                continue
            if not data:
                finish(c, "server closed the connection during login")
                continue
            c.buf += data
            outcome = parse_login(c)
            if outcome is not None:
                finish(c, outcome if outcome != "ready" else None)
        now = time.monotonic()
        for c in [c for c in pending.values() if now - c.started > conn_timeout]:
            finish(c, "timeout: no ReadyForQuery within %.0fs" % conn_timeout)
    sel.close()
    res.elapsed = time.monotonic() - t0
    return res


def parse_login(c):
    """Consume whole messages from c.buf: "ready", an error text, or None."""
    while len(c.buf) >= 5:
        mtype = c.buf[0:1]
        length = struct.unpack("!i", c.buf[1:5])[0]
        if length < 4 or length > 1 << 20:
            return "bad message length %d" % length
        if len(c.buf) < 1 + length:
            return None
        body = c.buf[5:1 + length]
        c.buf = c.buf[1 + length:]
        if mtype == b"R":
            code = struct.unpack("!i", body[:4])[0]
            if code != 0:
                return "server asked for authentication method %d (trust expected)" % code
        elif mtype == b"E":
            return error_text(body)
        elif mtype == b"Z":
            return "ready"
        # S (ParameterStatus), K (BackendKeyData), N (notice): ignore
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--user", default="postgres")
    ap.add_argument("--dbname", default="postgres")
    ap.add_argument("--sources", default="127.0.0.1",
                    help="comma-separated loopback source addresses")
    ap.add_argument("--hold", type=float, default=0, help="seconds to keep them open")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    res = open_idle(args.host, args.port, args.count, args.user, args.dbname,
                    tuple(args.sources.split(",")))
    print("ready %d, failed %d, %.1fs" % (len(res.ready), res.failed, res.elapsed))
    for msg, n in sorted(res.errors.items(), key=lambda kv: -kv[1]):
        print("  %6d  %s" % (n, msg))
    time.sleep(args.hold)
    res.close()


if __name__ == "__main__":
    main()
