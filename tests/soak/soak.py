"""The chaos soak: a live migration through the control plane and a linked agent daemon,
under a steady writer, while faults hit every part at random (seeded) moments, often at
once. Then the writer stops, the migration is cut over through the control plane, and the
target must equal the source (0 differences), with every fault visible in the logs.

    tests/soak/run [--short] [--minutes M] [--seed N] [--build-dir DIR] [--keep]
                   [--checker CMD] [--rate OPS_PER_S]

--short is the ctest form (about 2.5 minutes, every kind of fault at least twice);
--minutes M is the length of the fault phase of the long form run by hand
(`tests/soak/run --minutes 30 --seed 7`). The seed is printed first; the same seed gives
the same fault plan (times, kinds, durations), though not the same interleaving with the
servers' own timing.

Layout (all on 127.0.0.1, free ports, in one temporary directory):

    writer ──> source (SecantusDB, SCRAM) <── proxy "src" ──┐
               target (SecantusDB)        <── proxy "dst" ──┤ livemig-agent --config
               livemig-controlplane       <── proxy "cp"  ──┘   (linked daemon)
    livemig CLI and the REST API ──> livemig-controlplane (direct: the operator's path)

Faults: kill -9 of the agent daemon then a restart; restart of the source or the target
server (scripts/testbed restart: same port and data); kill -9 of the control plane then a
restart; a cut of the agent's path to the source, the target or the control plane
(scripts/lm_proxy.py: every connection reset, new ones refused, for a few seconds).

Every process is stopped on exit: children are killed in a `finally`, and a watchdog
process (like the test bed's) kills them by pid if this process dies first; the test-bed
servers and the proxy stop with their owner (--owner-pid) or after --max-seconds.
"""

import argparse
import base64
import json
import os
import random
import re
import secrets
import shlex
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = os.path.join(TOP, ".deps", "venv", "bin", "python")
sys.path.insert(0, os.path.join(TOP, "scripts"))
import lm_proxy  # noqa: E402

# The final comparison of source and target. `livemig-agent verify` takes the same
# arguments: swapping the checker is this one line (or --checker on the command line).
CHECKER = [PY, os.path.join(TOP, "scripts", "lm_check.py")]

FAULT_KINDS = ("agent_kill", "src_restart", "dst_restart", "cp_kill", "cut_src", "cut_dst", "cut_cp")

# What each fault must leave in the agent's log (a line stamped inside the fault's window,
# or within GRACE seconds after it). Regular expressions over one log line.
PATH = {"agent_kill": "agent", "cp_kill": "cp", "cut_cp": "cp", "src_restart": "src", "cut_src": "src",
        "dst_restart": "dst", "cut_dst": "dst"}
EVIDENCE = {
    "agent": r"live migration \S+: starting",
    "cp": r"jobs go on, retrying|the control plane answers again|the control plane did not answer at first",
    "src": r" (warn|error) +(source|.*SRCPORT)",
    "dst": r" (warn|error) +(target|applying|.*checkpoint|.*DSTPORT|.*; retrying in \d+ ms)",
}
# Paths whose outages must show in the agent's log; the others are reported as findings
# (docs/testing.md, "The chaos soak": a target outage shorter than the driver's server
# selection timeout leaves no line; a short source or control-plane outage can be absorbed
# by the driver's retried read or lm_http's own retries).
STRICT = ("agent",)
GRACE = 45.0
# What each outage must leave in the migration's fault history (the control plane's
# liveMigrations/{id} "events", issue 19) when it lasted longer than EVENT_MIN_SECONDS: an
# event of one of these kinds stamped inside it or within GRACE s after it.
EVENT_KINDS = {
    "agent": ("agent_resumed",),
    "cp": ("controlplane_unreachable", "controlplane_back", "controlplane_retried"),
    "src": ("source_unreachable", "source_back", "cursor_reopened", "source_read_retried"),
    "dst": ("target_unreachable", "target_back"),
}
EVENT_MIN_SECONDS = 3.0


class SoakFailure(Exception):
    pass


def utc(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def parse_utc(s):
    """'2026-11-30T08:05:54.849Z' -> epoch seconds (None when the line has no stamp)."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,3}))?Z", s)
    if not m:
        return None
    secs = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return secs + (int(m.group(2).ljust(3, "0")) / 1000 if m.group(2) else 0)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def watch(owner, d, max_seconds):
    """The watchdog: when the soak's process ends (or its time is up), kill by pid every
    process it registered in d/pids whose command line still names d (never a reused pid)."""
    deadline = time.monotonic() + max_seconds
    while True:
        try:
            os.kill(owner, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    try:
        with open(os.path.join(d, "pids")) as f:
            pids = [int(x) for x in f.read().split()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if d.encode() not in f.read():
                    continue
            os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


class Soak:
    def __init__(self, a):
        self.a = a
        self.build = os.path.abspath(a.build_dir)
        self.agent_bin = os.path.join(self.build, "agent", "livemig-agent")
        self.cp_bin = os.path.join(self.build, "controlplane", "livemig-controlplane")
        self.cli_bin = os.path.join(self.build, "cli", "livemig")
        for b in (self.agent_bin, self.cp_bin, self.cli_bin):
            if not os.access(b, os.X_OK):
                raise SoakFailure(f"{b} is missing: build first (cmake --build {self.build})")
        self.rng = random.Random(a.seed)
        self.dir = tempfile.mkdtemp(prefix="lm-soak-")
        os.chmod(self.dir, 0o700)
        self.soak_log = open(os.path.join(self.dir, "soak.log"), "a")
        self.procs = {}
        self.mu = threading.Lock()
        self.locks = {k: threading.Lock() for k in ("agent", "cp", "src", "dst")}
        self.faults = []
        self.failures = []
        self.errors_seen = []  # (time, text): the status's error history as the operator sees it
        self.events_seen = {}  # (time, kind, message, agentId) -> epoch s: the fault history
        self.statuses = []
        self.max_lag = 0  # the largest lagTimeSeconds the control plane showed
        self.servers = {}
        self.stop_monitor = threading.Event()
        self.closing = False  # set by cleanup: fault threads start nothing any more
        self.mig = None
        self.cp_url = None
        self.log(f"seed {a.seed}; directory {self.dir}")

    # ---- small tools ----

    def log(self, msg):
        line = f"{utc()} soak: {msg}"
        print(line, flush=True)
        self.soak_log.write(line + "\n")
        self.soak_log.flush()

    def path(self, name):
        return os.path.join(self.dir, name)

    def register_pid(self, pid):
        with open(self.path("pids"), "a") as f:
            f.write(f"{pid}\n")

    def spawn(self, name, argv, logname):
        if self.closing:
            raise SoakFailure(f"not starting {name}: the soak is ending")
        out = open(self.path(logname), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=self.dir)
        out.close()
        self.register_pid(p.pid)
        with self.mu:
            self.procs[name] = p
        return p

    def kill(self, name, sig=signal.SIGKILL, timeout=30):
        """Signals our child `name` (by its pid) and reaps it; returns its exit status."""
        with self.mu:
            p = self.procs.pop(name, None)
        if not p:
            return None
        if p.poll() is None:
            p.send_signal(sig)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None

    def slurp(self, name):
        try:
            with open(self.path(name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def tail(self, name, n=40):
        return "\n".join(self.slurp(name).splitlines()[-n:])

    def testbed(self, *args):
        r = subprocess.run([os.path.join(TOP, "scripts", "testbed"), *args], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise SoakFailure(f"scripts/testbed {' '.join(args)}: {r.stderr.strip()}")
        return dict(line.split("=", 1) for line in r.stdout.split() if "=" in line)

    # ---- the set-up ----

    def start_servers(self):
        limit = str(int(self.a.max_seconds))
        self.servers["src"] = self.testbed("start", "secantus-auth", "--owner-pid", str(os.getpid()),
                                           "--max-seconds", limit)
        self.servers["dst"] = self.testbed("start", "secantus", "--owner-pid", str(os.getpid()),
                                           "--max-seconds", limit)
        src = self.servers["src"]
        self.log(f"source {src['LM_TB_URI']} ({src['LM_TB_DIR']}), target "
                 f"{self.servers['dst']['LM_TB_URI']} ({self.servers['dst']['LM_TB_DIR']})")

    def start_proxy(self):
        self.proxy_sock = self.path("proxy.sock")
        argv = [PY, os.path.join(TOP, "scripts", "lm_proxy.py"), "--control", self.proxy_sock,
                "--owner-pid", str(os.getpid()), "--max-seconds", str(int(self.a.max_seconds)),
                "--route", f"src=127.0.0.1:{self.servers['src']['LM_TB_PORT']}",
                "--route", f"dst=127.0.0.1:{self.servers['dst']['LM_TB_PORT']}",
                "--route", f"cp=127.0.0.1:{self.cp_port}"]
        out = open(self.path("proxy.out"), "w")
        err = open(self.path("proxy.log"), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        self.register_pid(p.pid)
        self.procs["proxy"] = p
        until = time.monotonic() + 20
        while "LM_PROXY_READY=1" not in self.slurp("proxy.out"):
            if p.poll() is not None or time.monotonic() > until:
                raise SoakFailure(f"the proxy did not start: {self.slurp('proxy.log')}")
            time.sleep(0.05)
        vals = dict(line.split("=", 1) for line in self.slurp("proxy.out").split())
        self.pport = {k: int(vals[f"LM_PROXY_{k.upper()}"]) for k in ("src", "dst", "cp")}
        self.log(f"proxy ports: {self.pport}")

    def setup_cp(self):
        certs = self.path("certs")
        r = subprocess.run([os.path.join(TOP, "scripts", "mkcerts"), certs], capture_output=True, text=True)
        if r.returncode != 0:
            raise SoakFailure(f"scripts/mkcerts: {r.stderr}")
        self.ca = os.path.join(certs, "ca.pem")
        key = self.path("secrets.key")
        write_private(key, secrets.token_hex(32) + "\n")
        self.cp_port = free_port()
        self.cp_conf = self.path("cp.yaml")
        with open(self.cp_conf, "w") as f:
            f.write(f"listen: 127.0.0.1:{self.cp_port}\n"
                    f"tls:\n  cert_file: {certs}/server.pem\n  key_file: {certs}/server.key\n"
                    f"  ca_file: {certs}/ca.pem\n"
                    f"db_path: {self.dir}/cp.db\nsecrets_key_file: {key}\nheartbeat_interval: 1s\n"
                    "poll_timeout: 3s\ncutover_window: 4h\n")
        r = subprocess.run([self.cp_bin, "--config", self.cp_conf, "bootstrap", "--org", "org1"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SoakFailure(f"bootstrap: {r.stdout}{r.stderr}")
        self.pub = re.search(r"public key:\s+(\S+)", r.stdout).group(1)
        self.keyfile = self.path("owner.key")
        write_private(self.keyfile, re.search(r"private key:\s+(\S+)", r.stdout).group(1) + "\n")

    def start_cp(self):
        skip = len(self.slurp("cp.log").encode())
        p = self.spawn("cp", [self.cp_bin, "--config", self.cp_conf], "cp.log")
        until = time.monotonic() + 30
        while True:
            with open(self.path("cp.log"), "rb") as f:
                f.seek(skip)
                m = re.search(rb"LISTENING port=(\d+)", f.read())
            if m:
                self.cp_url = f"https://127.0.0.1:{int(m.group(1))}"
                return
            if p.poll() is not None or time.monotonic() > until:
                raise SoakFailure(f"the control plane did not start:\n{self.tail('cp.log')}")
            time.sleep(0.05)

    def cli(self, *args, check=True):
        """`livemig ...` against the control plane (direct, not through the proxy)."""
        argv = [self.cli_bin, "--url", self.cp_url, "--caFile", self.ca, "--publicKey", self.pub,
                "--privateKeyFile", self.keyfile, *args]
        r = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        out = r.stdout + r.stderr
        if check and r.returncode != 0:
            raise SoakFailure(f"livemig {' '.join(args)}: exit {r.returncode}: {out}")
        return r.returncode, out

    def cli_json(self, *args):
        _, out = self.cli(*args, "-o", "json")
        return json.loads(out[out.index("{"):])

    def rest(self, path):
        """GET on the admin API with the Owner key (HTTP Basic), as JSON."""
        ctx = ssl.create_default_context(cafile=self.ca)
        with open(self.keyfile) as f:
            cred = base64.b64encode(f"{self.pub}:{f.read().strip()}".encode()).decode()
        req = urllib.request.Request(self.cp_url + path, headers={"Authorization": "Basic " + cred})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.loads(r.read())

    def setup_migration(self):
        src, dst = self.servers["src"], self.servers["dst"]
        self.proj = self.cli_json("projects", "create", "soak", "--orgId", "org1")["id"]
        self.cli("clusters", "add", "src", "--projectId", self.proj, "--connectionString",
                 f"mongodb://127.0.0.1:{self.pport['src']}/?directConnection=true",
                 "--username", src["LM_TB_USER"], "--passwordFile", src["LM_TB_PASSWORD_FILE"])
        self.cli("clusters", "add", "dst", "--projectId", self.proj, "--connectionString",
                 f"mongodb://127.0.0.1:{self.pport['dst']}/?directConnection=true")
        _, token = self.cli("lm", "link", "create", "--orgId", "org1", "--accessListIp", "127.0.0.1")
        self.token_file = self.path("link.token")
        write_private(self.token_file, token.strip().splitlines()[0] + "\n")
        self.agent_conf = self.path("agent.yaml")
        with open(self.agent_conf, "w") as f:
            f.write(f"control_plane:\n  link_token_file: {self.token_file}\n  ca_file: {self.ca}\n"
                    f"  url: https://127.0.0.1:{self.pport['cp']}\n"
                    f"state_dir: {self.dir}/agent-state\nhostname: soak-host\n"
                    f"heartbeat_interval: 1s\npoll_timeout: 3s\n"
                    f"status_addr: 127.0.0.1:{free_port()}\nlog_level: info\n")

    def start_agent(self):
        self.spawn("agent", [self.agent_bin, "--config", self.agent_conf], "agent.log")

    def writer_argv(self, *extra):
        src = self.servers["src"]
        return [PY, os.path.join(TOP, "scripts", "lm_writer.py"), "--uri", src["LM_TB_URI"],
                "--user", src["LM_TB_USER"], "--password-file", src["LM_TB_PASSWORD_FILE"], *extra]

    # ---- watching ----

    def describe(self):
        return self.cli_json("lm", "describe", self.mig, "--projectId", self.proj)

    def monitor(self):
        """Every 2 s: the migration's status and the errors the operator is shown (the
        describe's errorMessage and the progress report's errors); a FAILED status or an
        agent/control plane that ended by itself is a failure at once."""
        seen = set()
        next_note = time.monotonic() + 30
        while not self.stop_monitor.wait(2.0):
            for name in ("agent", "cp"):
                lock = self.locks[name]
                if lock.acquire(blocking=False):
                    try:
                        with self.mu:
                            p = self.procs.get(name)
                        if p is not None and p.poll() is not None:
                            self.fail(f"the {name} ended by itself (exit status {p.returncode}):\n"
                                      f"{self.tail(name + '.log')}")
                            with self.mu:
                                self.procs.pop(name, None)
                    finally:
                        lock.release()
            try:
                d = self.describe()
                rep = self.rest(f"/api/atlas/v2/groups/{self.proj}/liveMigrations/{self.mig}/progress")
            except (SoakFailure, OSError, ValueError, urllib.error.URLError):
                continue  # the control plane is down (a fault): next time
            except Exception as e:  # never let the monitor die silently
                self.log(f"monitor: {type(e).__name__}: {e}")
                continue
            lag = d.get("lagTimeSeconds")
            if isinstance(lag, int) and lag > self.max_lag:
                self.max_lag = lag
            if time.monotonic() >= next_note:
                next_note = time.monotonic() + 30
                self.log(f"status {d.get('status')} phase {d.get('phase')} lag {lag} "
                         f"ready {d.get('readyForCutover')} (largest lag so far {self.max_lag} s)")
            texts = list(rep.get("errors") or [])
            if d.get("errorMessage"):
                texts.append(d["errorMessage"])
            self.take_events(d)
            for t in texts:
                if t not in seen:
                    seen.add(t)
                    self.errors_seen.append((time.time(), t))
                    self.log(f"status error history: {t}")
            st = (d.get("status"), d.get("phase"))
            if not self.statuses or self.statuses[-1][1] != st:
                self.statuses.append((time.time(), st))
                self.log(f"status {st[0]} phase {st[1]} lag {d.get('lagTimeSeconds')} "
                         f"ready {d.get('readyForCutover')}")
            if d.get("status") in ("FAILED", "CANCELLED", "EXPIRED"):
                self.fail(f"the migration became {d['status']}: {d.get('errorMessage')}")
                return

    def take_events(self, d):
        """The migration's fault history (describe's "events") into events_seen."""
        for e in d.get("events") or []:
            key = (e.get("time"), e.get("kind"), e.get("message"), e.get("agentId"))
            if key not in self.events_seen:
                self.events_seen[key] = parse_utc(e.get("time") or "") or 0.0
                self.log(f"fault history: {e.get('time')} {e.get('kind')}: {e.get('message')}")

    def fail(self, msg):
        self.log("FAILURE: " + msg)
        self.failures.append(msg)

    # ---- faults ----

    def plan(self, seconds):
        """Each kind of fault at least twice, more in a long run (one per kind per ~80 s),
        at uniform random moments over the fault phase: they overlap freely."""
        per_kind = max(2, round(seconds / 80))
        plan = []
        for kind in FAULT_KINDS:
            for _ in range(per_kind):
                at = self.rng.uniform(3, max(seconds - 8, 4))
                if kind.startswith("cut_"):
                    length = self.rng.uniform(2, 6)
                elif kind == "cp_kill":
                    length = self.rng.uniform(1, 8)
                elif kind == "agent_kill":
                    length = self.rng.uniform(0, 3)
                else:
                    length = 0  # the restart takes what it takes
                plan.append((at, kind, round(length, 1)))
        plan.sort()
        return plan

    def run_fault(self, t0, at, kind, length):
        time.sleep(max(0, t0 + at - time.monotonic()))
        f = {"kind": kind, "planned_at": at, "length": length}
        try:
            if kind.startswith("cut_"):
                f["start"] = time.time()
                ans = lm_proxy.send(self.proxy_sock, f"cut {kind[4:]} {length}")
                f["end"] = time.time() + length
                f["detail"] = ans
            elif kind in ("src_restart", "dst_restart"):
                with self.locks[kind[:3]]:
                    f["start"] = time.time()
                    self.testbed("restart", self.servers[kind[:3]]["LM_TB_DIR"])
                    f["end"] = time.time()
            elif kind == "agent_kill":
                with self.locks["agent"]:
                    f["start"] = time.time()
                    self.kill("agent", signal.SIGKILL)
                    time.sleep(length)
                    self.start_agent()
                    f["end"] = time.time()
            elif kind == "cp_kill":
                with self.locks["cp"]:
                    f["start"] = time.time()
                    self.kill("cp", signal.SIGKILL)
                    time.sleep(length)
                    self.start_cp()
                    f["end"] = time.time()
        except Exception as e:  # a fault that could not be injected is a failure of the soak
            if self.closing:
                return  # (the soak is ending already: nothing to inject into)
            self.fail(f"fault {kind} at +{at:.0f}s could not be injected: {e}")
            return
        self.log(f"fault {kind}: {utc(f['start'])} .. {utc(f['end'])} {f.get('detail', '')}")
        with self.mu:
            self.faults.append(f)

    # ---- the checks at the end ----

    def outages(self):
        """Faults merged per path into outages: faults on one path that overlap (or follow
        each other within 2 s) are one outage for the agent, which cannot tell them apart
        (a source restarted while its path is cut is never seen restarting)."""
        merged = []
        for path in ("agent", "cp", "src", "dst"):
            fs = sorted((f for f in self.faults if PATH[f["kind"]] == path), key=lambda f: f["start"])
            cur = None
            for f in fs:
                if cur and f["start"] <= cur["end"] + 2:
                    cur["end"] = max(cur["end"], f["end"])
                    cur["faults"].append(f)
                else:
                    cur = {"path": path, "start": f["start"], "end": f["end"], "faults": [f]}
                    merged.append(cur)
        return sorted(merged, key=lambda o: o["start"])

    def evidence(self):
        """For each outage: a line in the agent's log stamped inside it or within GRACE s
        after it, and an entry in the status's error history (errorMessage, the progress
        report's errors) seen in that time."""
        lines = []
        for line in self.slurp("agent.log").splitlines():
            t = parse_utc(line)
            if t is not None:
                lines.append((t, line))
        table = []
        used = set()
        outages = self.outages()
        hits = {}
        # two passes: a line inside the outage (or 5 s after it) first, then one within GRACE;
        # a line proves one outage only (endSessions: a client closed at the end)
        for slack in (5.0, GRACE):
            for k, o in enumerate(outages):
                if k in hits:
                    continue
                pat = EVIDENCE[o["path"]].replace("SRCPORT", str(self.pport["src"]))
                rx = re.compile(pat.replace("DSTPORT", str(self.pport["dst"])))
                lo, hi = o["start"] - 0.5, o["end"] + slack
                hit = next((ln for t, ln in lines if lo <= t <= hi and rx.search(ln) and
                            "endSessions" not in ln and ln not in used), None)
                if hit:
                    used.add(hit)
                    hits[k] = hit
        for k, o in enumerate(outages):
            lo, hi = o["start"] - 0.5, o["end"] + GRACE
            hist = next((txt for t, txt in self.errors_seen if lo <= t <= hi + 10), None)
            # a server outage while the agent was down or starting again: the new agent may
            # never have had a connection to lose (it waits in server selection, silently)
            o["agent_restarting"] = o["path"] in ("src", "dst") and any(
                f["kind"] == "agent_kill" and f["start"] <= o["end"] and o["start"] <= f["end"] + 5
                for f in self.faults)
            o["event"] = next((f"{kind}: {msg}" for (_, kind, msg, _), t in
                               sorted(self.events_seen.items(), key=lambda kv: kv[1])
                               if kind in EVENT_KINDS[o["path"]] and lo <= t <= hi), None)
            # the agent killed soon after (or during) a cp outage may never report what it saw
            o["agent_killed_after"] = o["path"] != "agent" and any(
                f["kind"] == "agent_kill" and o["start"] <= f["start"] <= o["end"] + 10
                for f in self.faults)
            table.append((o, hits.get(k), hist))
        return table

    def secrets_absent(self):
        with open(self.servers["src"]["LM_TB_PASSWORD_FILE"]) as f:
            pw = f.read().strip()
        for name in ("agent.log", "cp.log", "soak.log", "writer.log", "proxy.log"):
            if pw and pw in self.slurp(name):
                self.fail(f"the source password is in {name}")

    # ---- the run ----

    def run(self):
        a = self.a
        wd = subprocess.Popen([PY, os.path.abspath(__file__), "_watch", str(os.getpid()), self.dir,
                               str(int(a.max_seconds))], stdin=subprocess.DEVNULL, start_new_session=True)
        self.watchdog = wd
        self.start_servers()
        self.setup_cp()
        self.start_cp()
        self.start_proxy()
        self.setup_migration()
        self.start_agent()
        r = subprocess.run(self.writer_argv("--seconds", "0", "--docs", str(a.docs)),
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SoakFailure(f"loading the source: {r.stderr}")
        until = time.monotonic() + 60
        while "linked: agent" not in self.slurp("agent.log"):
            if time.monotonic() > until:
                raise SoakFailure(f"the agent did not link:\n{self.tail('agent.log')}")
            time.sleep(0.2)
        self.mig = self.cli_json("lm", "create", "--projectId", self.proj, "--clusterName", "dst",
                                 "--migrationHost", "soak-host", "--sourceClusterName", "src",
                                 "--sourceProjectId", self.proj)["_id"]
        self.log(f"live migration {self.mig} created")
        stop_file = self.path("writer.stop")
        self.spawn("writer", self.writer_argv("--no-load", "--docs", str(a.docs), "--mix", "soak",
                                              "--seconds", "1000000", "--rate", str(a.rate),
                                              "--stop-file", stop_file, "--seed", str(a.seed),
                                              "--ride-out"), "writer.log")
        mon = threading.Thread(target=self.monitor, daemon=True)
        mon.start()
        seconds = a.minutes * 60
        plan = self.plan(seconds)
        self.log(f"fault plan ({len(plan)} faults over {seconds:.0f} s): " +
                 ", ".join(f"+{at:.0f}s {kind}" + (f" {ln}s" if ln else "") for at, kind, ln in plan))
        t0 = time.monotonic()
        threads = [threading.Thread(target=self.run_fault, args=(t0, *p), daemon=True) for p in plan]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            if self.failures:  # e.g. the migration FAILED: no point going on
                raise SoakFailure("; ".join(self.failures))
            if time.monotonic() > t0 + seconds + 180:
                raise SoakFailure("a fault did not finish within 3 minutes of the fault phase's end")
            time.sleep(0.5)
        self.log("fault phase over; the writer goes on for 5 s")
        time.sleep(5)
        open(stop_file, "w").close()
        try:
            self.procs["writer"].wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("the writer did not stop within 60 s")
        self.log(f"writer: {self.tail('writer.log', 1)}")
        if self.failures:
            raise SoakFailure("; ".join(self.failures))
        self.cutover()
        self.stop_monitor.set()
        mon.join()
        self.verify()

    def cutover(self):
        """Waits for readyForCutover, asks for the cutover (refused 409 before ready: asked
        again), then waits for COMPLETE; each wait has a deadline and says where it stuck."""
        deadline = time.monotonic() + self.a.ready_seconds
        while True:
            try:
                d = self.describe()
            except SoakFailure:
                d = {}
            if d.get("status") == "WORKING" and d.get("readyForCutover"):
                # --force only skips the CLI's confirmation prompt: the control plane still
                # refuses a cutover before readyForCutover (409)
                rc, out = self.cli("lm", "cutover", self.mig, "--projectId", self.proj, "--force",
                                   check=False)
                if rc == 0:
                    self.log(f"cutover asked: {out.strip()}")
                    break
                self.log(f"cutover refused, asking again: {out.strip()}")
            if self.failures:
                raise SoakFailure("; ".join(self.failures))
            if time.monotonic() > deadline:
                raise SoakFailure(f"stuck: no readyForCutover within {self.a.ready_seconds} s after the "
                                  f"writer stopped; last answer {d}\nagent log:\n{self.tail('agent.log')}")
            time.sleep(1)
        deadline = time.monotonic() + self.a.complete_seconds
        while True:
            try:
                d = self.describe()
            except SoakFailure:
                d = {}
            if d.get("status") == "COMPLETE":
                break
            if self.failures:
                raise SoakFailure("; ".join(self.failures))
            if time.monotonic() > deadline:
                raise SoakFailure(f"stuck: not COMPLETE {self.a.complete_seconds} s after the cutover; last "
                                  f"answer {d}\nagent log:\n{self.tail('agent.log')}")
            time.sleep(1)
        self.log(f"live migration {self.mig}: COMPLETE")
        # livemig's own verification: the agent runs it after the cutover (on by default) and
        # the control plane shows it; the soak also judges with its own checker (verify()).
        deadline = time.monotonic() + self.a.complete_seconds
        while True:
            try:
                v = self.describe().get("verification") or {}
            except SoakFailure:
                v = {}
            state = v.get("state")
            if state == "passed":
                self.log(f"livemig's verification after the cutover: passed, "
                         f"{v.get('namespacesChecked')} namespaces, {v.get('documentsChecked')} documents")
                break
            if state in ("failed", "error"):
                raise SoakFailure(f"livemig's verification after the cutover: {state}: {json.dumps(v)[:3000]}")
            if time.monotonic() > deadline:
                raise SoakFailure(f"stuck: no verification result {self.a.complete_seconds} s after COMPLETE "
                                  f"(last: {v})\nagent log:\n{self.tail('agent.log')}")
            time.sleep(1)

    def verify(self):
        src, dst = self.servers["src"], self.servers["dst"]
        checker = shlex.split(self.a.checker) if self.a.checker else CHECKER
        argv = checker + ["--source", src["LM_TB_URI"], "--source-user", src["LM_TB_USER"],
                          "--source-password-file", src["LM_TB_PASSWORD_FILE"], "--target", dst["LM_TB_URI"]]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        self.log(f"checker ({os.path.basename(checker[-1])}): exit {r.returncode}: "
                 f"{(r.stdout + r.stderr).strip()[:3000]}")
        if r.returncode != 0:
            self.fail("the target differs from the source")
        self.take_events(self.describe())  # the last reports' events too
        kinds = {}
        for f in self.faults:
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
        self.log("faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        paths = {}
        for o, hit, hist in self.evidence():
            p = paths.setdefault(o["path"], [0, 0, 0, 0])
            p[0] += 1
            p[1] += bool(hit)
            p[2] += bool(hist)
            p[3] += bool(o["event"])
            what = "+".join(f["kind"] for f in o["faults"])
            if o["agent_restarting"]:
                what += ", the agent restarting"
            self.log(f"outage {o['path']} {utc(o['start'])} .. {utc(o['end'])} ({what}): agent log: "
                     f"{hit.strip()[:200] if hit else 'NONE'}; status error history: "
                     f"{hist[:160] if hist else 'none'}; fault history: "
                     f"{o['event'][:200] if o['event'] else 'NONE'}")
            long_enough = o["end"] - o["start"] > EVENT_MIN_SECONDS
            if not o["event"] and long_enough and not o["agent_restarting"] and \
                    not o["agent_killed_after"]:
                self.fail(f"the {o['path']} outage at {utc(o['start'])} ({what}, "
                          f"{o['end'] - o['start']:.1f} s) left no event in the migration's fault "
                          "history (the control plane's events)")
            elif not o["event"]:
                self.log(f"FINDING: the {o['path']} outage at {utc(o['start'])} ({what}, "
                         f"{o['end'] - o['start']:.1f} s) left no event in the fault history")
            if not hit and o["path"] in STRICT and not o["agent_restarting"]:
                self.fail(f"the {o['path']} outage at {utc(o['start'])} ({what}) left no trace in the "
                          "agent's log")
            elif not hit and not o["agent_restarting"]:
                self.log(f"FINDING: the {o['path']} outage at {utc(o['start'])} ({what}) left no line "
                         "naming it in the agent's log")
        self.log(f"largest lagTimeSeconds seen: {self.max_lag} s")
        self.log("outages by path (outages / seen in the agent's log / seen in the status's error "
                 "history / seen in the fault history): " +
                 ", ".join(f"{k} {v[0]}/{v[1]}/{v[2]}/{v[3]}" for k, v in sorted(paths.items())))
        stats = lm_proxy.send(self.proxy_sock, "stats")
        self.log(f"proxy: {stats}")
        self.secrets_absent()
        # the daemon and the control plane stop cleanly
        for name in ("agent", "cp"):
            rc = self.kill(name, signal.SIGTERM, timeout=60)
            if rc != 0:
                self.fail(f"the {name} exited with status {rc} on SIGTERM")
        if self.failures:
            raise SoakFailure("; ".join(self.failures))

    def cleanup(self, ok):
        self.closing = True
        self.stop_monitor.set()
        for name in ("writer", "agent", "cp", "proxy"):
            self.kill(name, signal.SIGKILL, timeout=10)
        for s in self.servers.values():
            subprocess.run([os.path.join(TOP, "scripts", "testbed"), "stop", s["LM_TB_DIR"]],
                           capture_output=True)
        if getattr(self, "watchdog", None):
            self.watchdog.kill()
            self.watchdog.wait()
        if ok and not self.a.keep:
            subprocess.run(["rm", "-rf", "--", self.dir])
        else:
            print(f"soak: logs kept in {self.dir}", flush=True)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "_watch":
        watch(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(prog="tests/soak/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="the ctest form: a 100 s fault phase")
    ap.add_argument("--minutes", type=float, default=None, help="length of the fault phase")
    ap.add_argument("--seed", type=int, default=None, help="the fault plan's seed (default: random, printed)")
    ap.add_argument("--build-dir", default=os.path.join(TOP, "build"))
    ap.add_argument("--rate", type=float, default=40, help="writer operations per second")
    ap.add_argument("--docs", type=int, default=3000, help="documents on the source before the migration")
    ap.add_argument("--checker", help="the comparison command (default: scripts/lm_check.py), e.g. "
                                      "'build/agent/livemig-agent verify'; it gets --source ... --target URI")
    ap.add_argument("--ready-seconds", type=float, default=240)
    ap.add_argument("--complete-seconds", type=float, default=240)
    ap.add_argument("--keep", action="store_true", help="keep the directory with every log")
    a = ap.parse_args()
    if a.minutes is None:
        a.minutes = 100 / 60 if a.short else 30
    if a.minutes <= 0:
        ap.error("--minutes must be positive")
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 10**6)
    # every process ends on its own after this long, whatever happens to this one
    a.max_seconds = a.minutes * 60 + 1200
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"soak: seed {a.seed} (repeat with --seed {a.seed}), fault phase {a.minutes * 60:.0f} s", flush=True)
    try:
        s = Soak(a)
    except SoakFailure as e:
        print(f"soak: FAILED: {e}", flush=True)
        return 1
    ok = False
    t = time.monotonic()
    try:
        s.run()
        ok = True
        s.log(f"PASSED in {time.monotonic() - t:.0f} s (seed {a.seed})")
    except SoakFailure as e:
        s.log(f"FAILED after {time.monotonic() - t:.0f} s (seed {a.seed}): {e}")
    finally:
        s.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
