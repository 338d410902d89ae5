"""livemig fault proxy: TCP forwarders on 127.0.0.1 that a test can cut, to take a network
path away for a few seconds without root or network namespaces.

    lm_proxy.py --route NAME=HOST:PORT [--route ...] --control SOCKET [--owner-pid PID]
                [--max-seconds N]

Each route listens on a free port of 127.0.0.1 and forwards every connection to HOST:PORT.
On start it prints one line per route, `LM_PROXY_<NAME>=<port>`, then `LM_PROXY_READY=1`.
The control socket (a Unix socket, 0600) takes one command per connection and answers one line:

    cut NAME SECONDS   drop every connection of the route (RST) and refuse new ones (the
                       listener is closed: ECONNREFUSED) for SECONDS; cuts that overlap extend
                       each other. Answers "ok dropped=N".
    stats              a JSON line: per route, connections accepted, open, dropped, cuts.

The proxy ends by itself when --owner-pid ends or after --max-seconds (default 3600): a
test that dies leaves nothing behind. Every cut and every restored listener is logged on
stderr with a UTC timestamp.
"""

import argparse
import json
import os
import select
import socket
import struct
import sys
import threading
import time


def log(msg):
    t = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)
    sys.stderr.write(f"{ts} lm_proxy: {msg}\n")
    sys.stderr.flush()


class Route:
    def __init__(self, name, host, port):
        self.name, self.host, self.port = name, host, port
        self.mu = threading.Lock()
        self.conns = set()  # (client socket, upstream socket)
        self.cut_until = 0.0
        self.listener = None
        self.listen_port = 0
        self.accepted = self.dropped = self.cuts = 0

    def bind(self, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(128)
        s.settimeout(0.2)
        self.listener = s
        self.listen_port = s.getsockname()[1]

    def cut(self, seconds):
        """Drops every connection with a reset and keeps the port closed for `seconds`."""
        with self.mu:
            self.cut_until = max(self.cut_until, time.monotonic() + seconds)
            self.cuts += 1
            conns = list(self.conns)
            self.conns.clear()
            self.dropped += len(conns)
            if self.listener:
                try:  # wakes the accepting thread and stops listening at once (Linux)
                    self.listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self.listener.close()
                self.listener = None
        for pair in conns:
            for s in pair:
                reset(s)
        log(f"{self.name}: cut for {seconds:.1f} s: dropped {len(conns)} connection(s), "
            f"port {self.listen_port} refuses connections")
        return len(conns)

    def serve(self):
        while True:
            with self.mu:
                cut = self.cut_until > time.monotonic()
                listener = self.listener
            if cut:
                time.sleep(0.05)
                continue
            if listener is None:
                try:
                    with self.mu:
                        if self.cut_until <= time.monotonic() and self.listener is None:
                            self.bind(self.listen_port)
                    log(f"{self.name}: port {self.listen_port} accepts connections again")
                except OSError as e:  # the port is briefly busy: try again
                    log(f"{self.name}: cannot listen on {self.listen_port} again yet: {e}")
                    time.sleep(0.1)
                continue
            try:
                client, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.forward, args=(client,), daemon=True).start()

    def forward(self, client):
        try:
            upstream = socket.create_connection((self.host, self.port), timeout=5)
        except OSError:
            reset(client)  # the server is down: the client sees its connection reset
            return
        upstream.settimeout(None)
        client.settimeout(None)
        pair = (client, upstream)
        with self.mu:
            if self.cut_until > time.monotonic():
                reset(client)
                reset(upstream)
                return
            self.conns.add(pair)
            self.accepted += 1
        try:
            pump(client, upstream)
        finally:
            with self.mu:
                self.conns.discard(pair)
            for s in pair:
                try:
                    s.close()
                except OSError:
                    pass

    def stats(self):
        with self.mu:
            return {"port": self.listen_port, "accepted": self.accepted, "open": len(self.conns),
                    "dropped": self.dropped, "cuts": self.cuts}


def reset(s):
    """Closes s so that the peer sees a reset, also when another thread is reading it."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def pump(a, b):
    """Copies both directions until one side closes or fails."""
    peer = {a: b, b: a}
    while True:
        try:
            readable, _, _ = select.select([a, b], [], [], 1.0)
        except (OSError, ValueError):
            return
        for s in readable:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                peer[s].sendall(data)
            except OSError:
                return


def control(path, routes):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        srv.bind(path)
    finally:
        os.umask(old)
    srv.listen(16)
    while True:
        c, _ = srv.accept()
        with c:
            try:
                line = c.makefile("r").readline().split()
                if len(line) == 3 and line[0] == "cut" and line[1] in routes:
                    n = routes[line[1]].cut(float(line[2]))
                    answer = f"ok dropped={n}"
                elif line == ["stats"]:
                    answer = json.dumps({k: r.stats() for k, r in routes.items()})
                else:
                    answer = "error: commands are 'cut NAME SECONDS' (routes: %s) and 'stats'" % (
                        ", ".join(sorted(routes)))
                c.sendall((answer + "\n").encode())
            except (OSError, ValueError) as e:
                try:
                    c.sendall(f"error: {e}\n".encode())
                except OSError:
                    pass


def send(path, command, timeout=10.0):
    """The client side of the control socket (used by tests/soak): one command, one answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall((command + "\n").encode())
        return s.makefile("r").readline().strip()


def watchdog(owner, deadline):
    while True:
        if owner:
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                log(f"owner {owner} ended: stopping")
                os._exit(0)
            except PermissionError:
                pass
        if time.monotonic() > deadline:
            log("--max-seconds reached: stopping")
            os._exit(0)
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--route", action="append", required=True, help="NAME=HOST:PORT")
    ap.add_argument("--control", required=True, help="the control socket's path")
    ap.add_argument("--owner-pid", type=int, default=0)
    ap.add_argument("--max-seconds", type=int, default=3600)
    a = ap.parse_args()
    routes = {}
    for spec in a.route:
        name, _, target = spec.partition("=")
        host, _, port = target.rpartition(":")
        if not name or not name.isidentifier() or not host or not port.isdigit():
            ap.error(f"--route {spec}: expected NAME=HOST:PORT, e.g. src=127.0.0.1:27017")
        routes[name] = Route(name, host, int(port))
    for r in routes.values():
        r.bind(0)
    threading.Thread(target=watchdog, args=(a.owner_pid, time.monotonic() + a.max_seconds),
                     daemon=True).start()
    threading.Thread(target=control, args=(a.control, routes), daemon=True).start()
    for r in routes.values():
        threading.Thread(target=r.serve, daemon=True).start()
    for name, r in routes.items():
        print(f"LM_PROXY_{name.upper()}={r.listen_port}")
    while not os.path.exists(a.control):
        time.sleep(0.01)
    print("LM_PROXY_READY=1", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
