"""bench/peers: livemig against its real peers, mongodump|mongorestore and PCSM (Percona
ClusterSync for MongoDB), on the same workloads in one run (issue 18). Run through
bench/peers, which checks the build.

Copy workloads (LM_BENCH_SCALE multiplies the document counts; default 1):
  one-large  60 000 documents of ~1 KB in one collection
  many-50    50 collections x 1 000 documents of ~1 KB
  many-500   500 collections x 100 documents of ~1 KB
  skewed     3 collections x 15 000 documents + 200 collections x 20 documents, ~1 KB each
  full       scripts/lm_seed.py full: options, views, every index kind, every BSON type,
             a time-series collection, a document near 16 MB (its size does not scale)
Live workload:
  live       each tool migrates live: after its initial sync, scripts/lm_writer.py's
             standard mix at each rate of LM_PEERS_LIVE_RATES (default 50,200 ops/s) for
             LM_PEERS_LIVE_SECONDS (default 30), lag sampled every 250 ms from the tool's own
             status and, by one method for both, by a probe (a counter set on the source
             every 0.5 s, timed until the target shows it), then the time until the target
             equals the source, then the cutover
             (livemig-agent cutover / pcsm finalize) and the checker.
LM_PEERS_WORKLOADS picks some (space or comma separated; default all six).

Contenders of a copy workload, each on a fresh target, the same seeded source:
  livemig        livemig-agent migrate --copy-only (defaults); LM_BENCH_AGENT names the binary
  dump|restore   mongodump --archive | mongorestore --archive, defaults
  dump|restore jJ wW  the best of the settings in LM_PEERS_SETTINGS (default "1x1,8x4":
                 -j/--numParallelCollections J on both, --numInsertionWorkersPerCollection W),
                 chosen by a first pass on the workload (one run each, reported as round 0)
  pcsm           pcsm --source S --target T --port P; `pcsm start`; GET /status until
                 initialSync.completed; `pcsm finalize`; GET /status until state finalized.
                 Wall time from the process's start to finalized; CPU and peak RSS of the pcsm
                 process from /proc.
LM_PEERS_ROUNDS rounds (default 2), the contenders' order rotating each round. Peers come
from LM_PEERS_DIR (default .deps/peers; /work/shared/peers/unpack DIR makes one); a missing
binary skips its contender with a line saying so.

PCSM against SecantusDB: it learns that its change stream has passed the end of the clone
from a no-op it writes with appendOplogNote every second, which SecantusDB does not have
("no such command" in its log), so with a quiet source it never reports the initial sync
completed. The bench stands in for that no-op: once the clone is complete it upserts one
document into lm_peers_tick.t on the source every 0.5 s until PCSM reports completed (and
drops that database again after the copy measurement). PCSM's own database
percona_clustersync_mongodb and lm_peers_tick are left out of its verdict and noted.

Every measurement prints one JSON line; each workload a markdown table (medians over the
rounds); at the end the issue-18 targets. Fidelity: scripts/lm_check.py on each tool's target
of round 1 (LM_PEERS_CHECK=all: every round, none: never).
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lm_benchlib import (AGENT, BENCH, PY, TOP, free_port, log_time, pct, proc_cpu,  # noqa: E402
                         proc_peak_rss_mb, testbed_start, testbed_stop, testbed_stop_all)

SCALE = float(os.environ.get("LM_BENCH_SCALE") or 1)
PEERS = os.environ.get("LM_PEERS_DIR") or os.path.join(TOP, ".deps/peers")
ROUNDS = int(os.environ.get("LM_PEERS_ROUNDS") or 2)
SETTINGS = os.environ.get("LM_PEERS_SETTINGS") or "1x1,8x4"
CHECK = os.environ.get("LM_PEERS_CHECK") or "first"
LIVE_RATES = [int(r) for r in (os.environ.get("LM_PEERS_LIVE_RATES") or "50,200").split(",")]
LIVE_SECONDS = float(os.environ.get("LM_PEERS_LIVE_SECONDS") or 30)
LIVE_DOCS = 1000  # documents each rate's writer database holds before the tools start
# Lag samples of a rate's first seconds are kept apart (lag_max_first_s): PCSM's figure is
# the source's cluster time minus the last change it applied, which on an idle source grows
# by the second (SecantusDB's cluster time runs with the clock), so its first samples tell
# the length of the idle pause before the writer, not its lag under the load.
LAG_SKIP_S = 2.0
ALL = ["one-large", "many-50", "many-500", "skewed", "full", "live"]
PCSM_DB = "percona_clustersync_mongodb"
TICK_DB = "lm_peers_tick"
IGNORED_DBS = (PCSM_DB, TICK_DB)
WORK = None  # the run's folder (tool logs, state dirs), made by main
results = []


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def usage_error(msg):
    say(f"bench/peers: {msg}")
    sys.exit(2)


def emit(rec):
    print(json.dumps(rec), flush=True)
    results.append(rec)
    return rec


def n(x):
    return max(1, int(x * SCALE))


def peer(name):
    p = os.path.join(PEERS, name)
    return p if os.access(p, os.X_OK) else None


def client(uri):
    from pymongo import MongoClient
    return MongoClient(uri, directConnection=True, serverSelectionTimeoutMS=30000)


# ---- servers and seeding ----

class Server:
    def __init__(self, *extra):
        env = testbed_start(*extra)
        self.uri, self.dir, self.pid = env["LM_TB_URI"], env["LM_TB_DIR"], int(env["LM_TB_PID"])

    def cpu(self):
        return proc_cpu(self.pid) or 0.0

    def stop(self):
        testbed_stop(self.dir)


def seed_bulk(uri, db, docs, colls):
    r = subprocess.run([PY, os.path.join(TOP, "scripts/lm_seed.py"), "--uri", uri, "bulk", "--docs",
                        str(docs), "--collections", str(colls), "--doc-bytes", "1000", "--no-index",
                        "--db", db], check=True, capture_output=True, text=True)
    return json.loads(r.stdout)["documents"]


def seed(w, uri):
    """Seeds workload w into uri; returns (documents, description)."""
    if w == "one-large":
        return seed_bulk(uri, "bulk", n(60000), 1), "1 collection x %d docs of ~1 KB" % n(60000)
    if w == "many-50":
        return (seed_bulk(uri, "bulk", n(1000) * 50, 50),
                "50 collections x %d docs of ~1 KB" % n(1000))
    if w == "many-500":
        return (seed_bulk(uri, "bulk", n(100) * 500, 500),
                "500 collections x %d docs of ~1 KB" % n(100))
    if w == "skewed":
        d = seed_bulk(uri, "skewbig", n(15000) * 3, 3) + seed_bulk(uri, "skewtiny", n(20) * 200, 200)
        return d, "3 x %d + 200 x %d docs of ~1 KB" % (n(15000), n(20))
    if w == "full":
        r = subprocess.run([PY, os.path.join(TOP, "scripts/lm_seed.py"), "--uri", uri, "full"],
                           check=True, capture_output=True, text=True)
        return json.loads(r.stdout)["documents"], "lm_seed.py full (sizes fixed)"
    usage_error(f"unknown workload {w!r}: choose from {' '.join(ALL)}")


# ---- fidelity ----

def kind_of(detail):
    ns = detail.split(":", 1)[0]
    for key, label in (("missing on the target", "missing"), ("differs in", "document differs"),
                       ("extra document", "extra documents"), ("options differ", "options differ"),
                       ("indexes differ", "indexes differ"), ("not on the source", "only on target"),
                       ("excluded, but present", "excluded but present")):
        if key in detail:
            if label == "missing" and "document _id" in detail:
                label = "documents missing"
            return f"{ns}: {label}"
    return ns


def check(src, dst):
    """scripts/lm_check.py on the pair; PCSM's database and the tick database are left out
    (and named in `ignored`)."""
    r = subprocess.run([PY, os.path.join(TOP, "scripts/lm_check.py"), "--source", src, "--target",
                        dst, "--json"], capture_output=True, text=True)
    try:
        rep = json.loads(r.stdout)
    except ValueError:
        return {"differences": None, "kinds": ["checker failed: " + r.stderr.strip()[-200:]]}
    ignored = [d for d in rep["details"] if d.split(".", 1)[0] in IGNORED_DBS]
    kept = [d for d in rep["details"] if d not in ignored]
    kinds = []
    for d in kept:
        k = kind_of(d)
        if k not in kinds:
            kinds.append(k)
    out = {"differences": rep["differences"] - len(ignored), "kinds": kinds[:4],
           "checked_docs": rep["documents"], "first": [d[:300] for d in kept[:3]]}
    if ignored:
        out["ignored"] = sorted({d.split(":", 1)[0] for d in ignored})
    return out


# ---- contenders of a copy workload ----

def lm_bench_run(argv, log):
    report = os.path.join(WORK, "run.json")
    with open(log, "w") as f:
        rc = subprocess.run([BENCH, "run", "--report", report, "--"] + argv, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    with open(report) as f:
        return rc, json.load(f)


def run_livemig(w, src, dst, tag):
    log = os.path.join(WORK, f"livemig-{tag}.log")
    rc, r = lm_bench_run([AGENT, "migrate", "--copy-only", "--source", src, "--target", dst,
                          "--state-dir", os.path.join(WORK, f"state-{tag}"), "--status-addr", "0"], log)
    text = open(log).read()
    if rc != 0 or "livemig copy COMPLETE" not in text:
        raise RuntimeError(f"livemig exited {rc}: {text[-2000:]}")
    return {"seconds": r["seconds"], "cpu_s": r["cpu_s"], "max_rss_mb": r["max_rss_mb"]}


def run_restore(w, src, dst, tag, setting):
    dump, restore = peer("mongodump"), peer("mongorestore")
    opts_d, opts_r = "", ""
    if setting:
        j, wk = setting.split("x")
        opts_d = f" --numParallelCollections={j}"
        opts_r = f" --numParallelCollections={j} --numInsertionWorkersPerCollection={wk}"
    cmd = (f"set -o pipefail; '{dump}' --uri '{src}' --archive --quiet{opts_d} | "
           f"'{restore}' --uri '{dst}' --archive --quiet{opts_r}")
    log = os.path.join(WORK, f"restore-{tag}.log")
    rc, r = lm_bench_run(["bash", "-c", cmd], log)
    if rc != 0:
        raise RuntimeError(f"mongodump|mongorestore exited {rc}: {open(log).read()[-2000:]}")
    return {"seconds": r["seconds"], "cpu_s": r["cpu_s"], "max_rss_mb": r["max_rss_mb"]}


def http_json(port, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=b"{}" if method == "POST" else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


class Pcsm:
    """One pcsm process serving its API on a free port."""

    def __init__(self, src, dst, tag):
        self.port = free_port()
        self.src = src
        self.log = open(os.path.join(WORK, f"pcsm-{tag}.log"), "w")
        self.t0 = time.monotonic()
        self.clone_s = None  # seconds from the start until the status said cloneCompleted
        self.p = subprocess.Popen([peer("pcsm"), "--source", src, "--target", dst, "--port",
                                   str(self.port), "--log-no-color"], stdout=self.log,
                                  stderr=subprocess.STDOUT)
        while http_json(self.port, "/status") is None:
            if self.p.poll() is not None:
                raise RuntimeError(f"pcsm exited {self.p.returncode} at start: see {self.log.name}")
            if time.monotonic() - self.t0 > 60:
                self.stop()
                raise RuntimeError(f"pcsm served no status within 60 s: see {self.log.name}")
            time.sleep(0.05)

    def cli(self, what):
        r = subprocess.run([peer("pcsm"), what, "--port", str(self.port)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"pcsm {what}: {r.stdout.strip()} {r.stderr.strip()}")

    def status(self):
        s = http_json(self.port, "/status") or {}
        if s.get("state") == "failed":
            raise RuntimeError(f"pcsm failed: {s.get('error') or s}; see {self.log.name}")
        return s

    def wait_initial_sync(self, timeout=1800):
        """Polls until initialSync.completed, ticking the source (see the top of this file)
        once the clone is complete."""
        c = client(self.src)
        tick = c[TICK_DB].t
        t0, last_tick, ticks = time.monotonic(), 0.0, 0
        while time.monotonic() - t0 < timeout:
            s = self.status()
            init = s.get("initialSync") or {}
            if init.get("completed"):
                c.close()
                return ticks
            if init.get("cloneCompleted") and self.clone_s is None:
                self.clone_s = round(time.monotonic() - self.t0, 2)
            if init.get("cloneCompleted") and time.monotonic() - last_tick >= 0.5:
                tick.update_one({"_id": 1}, {"$inc": {"n": 1}}, upsert=True)
                last_tick, ticks = time.monotonic(), ticks + 1
            time.sleep(0.1)
        raise RuntimeError(f"pcsm: initial sync not completed within {timeout} s")

    def finalize(self, timeout=600):
        """`pcsm finalize`, then polls until finalized; returns its seconds."""
        t0 = time.monotonic()
        self.cli("finalize")
        while time.monotonic() - t0 < timeout:
            if self.status().get("state") == "finalized":
                return time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError(f"pcsm: not finalized within {timeout} s")

    def stop(self):
        """Ends the process; returns (CPU s, peak RSS MB) read just before."""
        cpu, rss = proc_cpu(self.p.pid), proc_peak_rss_mb(self.p.pid)
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return cpu, rss


def run_pcsm(w, src, dst, tag):
    p = Pcsm(src, dst, tag)
    try:
        p.cli("start")
        ticks = p.wait_initial_sync()
        sync_s = time.monotonic() - p.t0
        fin_s = p.finalize()
        secs = time.monotonic() - p.t0
    finally:
        cpu, rss = p.stop()
        with client(src) as c:
            c.drop_database(TICK_DB)
    return {"seconds": round(secs, 2), "cpu_s": cpu, "max_rss_mb": rss,
            "clone_s": p.clone_s, "initial_sync_s": round(sync_s, 2), "finalize_s": round(fin_s, 2), "ticks": ticks}


def measure(w, tool, fn, src, docs, rnd, do_check, **kw):
    dst = Server()
    c0s, c0d = src.cpu(), dst.cpu()
    try:
        r = fn(w, src.uri, dst.uri, f"{w}-{tool.replace(' ', '')}-{rnd}", **kw)
        r.update(src_cpu_s=round(src.cpu() - c0s, 2), dst_cpu_s=round(dst.cpu() - c0d, 2))
        if do_check:
            r["check"] = check(src.uri, dst.uri)
    except Exception as e:  # noqa: BLE001 - one failed measurement is reported, the run goes on
        r = {"error": str(e)[-600:]}
        say(f"bench/peers: {w} {tool} round {rnd}: {str(e)[-600:]}")
    finally:
        dst.stop()
    r.update(workload=w, tool=tool, round=rnd, docs=docs)
    if r.get("seconds"):
        r["docs_per_s"] = round(docs / r["seconds"])
    return emit(r)


def copy_workload(w):
    src = Server()
    try:
        docs, desc = seed(w, src.uri)
        say(f"== {w}: {desc}, {docs} documents")
        emit({"workload": w, "what": "seeded", "docs": docs, "layout": desc})
        contenders = [("livemig", run_livemig, {})]
        if peer("mongodump") and peer("mongorestore"):
            contenders.append(("dump|restore", run_restore, {"setting": None}))
            best, best_s = None, None
            for s in SETTINGS.split(","):
                r = measure(w, f"dump|restore j{s.replace('x', ' w')}", run_restore, src, docs, 0,
                            False, setting=s)
                if r.get("seconds") and (best_s is None or r["seconds"] < best_s):
                    best, best_s = s, r["seconds"]
            if best:
                contenders.append((f"dump|restore j{best.replace('x', ' w')}", run_restore,
                                   {"setting": best}))
        else:
            say(f"bench/peers: no mongodump and mongorestore in {PEERS}: that contender is skipped "
                f"(/work/shared/peers/unpack DIR, then LM_PEERS_DIR=DIR)")
        if peer("pcsm"):
            contenders.append(("pcsm", run_pcsm, {}))
        else:
            say(f"bench/peers: no pcsm in {PEERS}: that contender is skipped")
        for rnd in range(1, ROUNDS + 1):
            k = (rnd - 1) % len(contenders)
            for tool, fn, kw in contenders[k:] + contenders[:k]:
                do_check = CHECK == "all" or (CHECK == "first" and rnd == 1)
                measure(w, tool, fn, src, docs, rnd, do_check, **kw)
    finally:
        src.stop()


# ---- live sync ----

def livemig_status(port):
    return http_json(port, "/api/v1/status") or {}


def same_data(src, dst, dbs):
    """True when every collection of dbs holds equal documents (by value, field order
    ignored) on both sides: the drain's end, whatever order a tool writes fields in."""
    for db in dbs:
        for name in src[db].list_collection_names():
            a = list(src[db][name].find({}).sort("_id", 1))
            b = list(dst[db][name].find({}).sort("_id", 1))
            if a != b:
                return False
    return True


PROBE_DB = "lm_peers_probe"


def probe(stop, src, dst, out):
    """The same lag figure for every tool: every 0.5 s a counter is set on the source
    (lm_peers_probe.p) and the target is read every 50 ms until it shows it; out gets the
    seconds each took (60 s at most)."""
    ps, pd = src[PROBE_DB].p, dst[PROBE_DB].p
    k = int((ps.find_one({"_id": 1}) or {}).get("seq", 0))
    while not stop.is_set():
        k += 1
        t = time.monotonic()
        ps.update_one({"_id": 1}, {"$set": {"seq": k}}, upsert=True)
        while time.monotonic() - t < 60:
            d = pd.find_one({"_id": 1})
            if d and d.get("seq", 0) >= k:
                break
            time.sleep(0.05)
        out.append(round(time.monotonic() - t, 3))
        time.sleep(max(0.0, t + 0.5 - time.monotonic()))


class LivemigLive:
    name = "livemig"

    def __init__(self, src, dst):
        self.port = free_port()
        self.state = os.path.join(WORK, "state-live")
        self.log = open(os.path.join(WORK, "livemig-live.log"), "w")
        self.usage = None
        argv = [AGENT, "migrate", "--source", src, "--target", dst, "--state-dir", self.state,
                "--status-addr", f"127.0.0.1:{self.port}"]
        if os.environ.get("LM_PEERS_LIVE_LOG_LEVEL"):  # e.g. debug, to see where a cutover goes
            argv += ["--log-level", os.environ["LM_PEERS_LIVE_LOG_LEVEL"]]
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_synced(self, timeout=1800):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.p.poll() is not None:
                raise RuntimeError(f"livemig exited {self.p.returncode}: see {self.log.name}")
            s = livemig_status(self.port)
            if s.get("phase") == "STREAMING" and s.get("lagTimeSeconds") == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("livemig: not streaming with lag 0 in time")

    def lag(self):
        s = livemig_status(self.port)
        v = s.get("lagTimeSeconds")
        return float(v) if v is not None else None

    def cutover(self):
        t0, wall0 = time.monotonic(), time.time()
        r = subprocess.run([AGENT, "cutover", "--status-addr", f"127.0.0.1:{self.port}",
                            "--state-dir", self.state], capture_output=True, text=True)
        forced = False
        if r.returncode != 0:  # not readyForCutover by its own rule: say so, force it
            forced = True
            subprocess.run([AGENT, "cutover", "--status-addr", f"127.0.0.1:{self.port}",
                            "--state-dir", self.state, "--force"], check=True, capture_output=True)
        # wait4: the exited agent's CPU and peak RSS (/proc no longer has them)
        _, st, ru = os.wait4(self.p.pid, 0)
        self.p.returncode = os.waitstatus_to_exitcode(st)
        self.usage = (ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0)
        took = time.monotonic() - t0
        # the downtime ends at COMPLETE (the target holds every change up to the cutoff); the
        # agent then verifies the target (it only reads) before it exits: both are reported
        self.log.flush()
        complete = log_time(open(self.log.name, errors="replace").read(), "entering phase COMPLETE")
        if complete is not None:
            complete -= wall0
        return took, {"exit": self.p.returncode, "forced": forced,
                      "to_complete_s": round(complete, 2) if complete is not None else None}

    def stop(self):
        if self.usage:
            cpu, rss = self.usage
        else:
            cpu, rss = proc_cpu(self.p.pid), proc_peak_rss_mb(self.p.pid)
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.log.close()
        return cpu, rss


class PcsmLive:
    name = "pcsm"

    def __init__(self, src, dst):
        self.pc = Pcsm(src, dst, "live")
        self.pc.cli("start")

    def wait_synced(self):
        self.pc.wait_initial_sync()

    def lag(self):
        v = self.pc.status().get("lagTimeSeconds")
        return float(v) if v is not None else None

    def cutover(self):
        return self.pc.finalize(), {}

    def stop(self):
        return self.pc.stop()


def live_one(cls, seeded_docs):
    src = Server("--oplog-max-entries", "2000000")
    dst = Server()
    tool = None
    base = {"workload": "live", "tool": cls.name}
    try:
        seed_bulk(src.uri, "base", n(20000), 4)
        client(src.uri)[PROBE_DB].p.insert_one({"_id": 1, "seq": 0})
        for rate in LIVE_RATES:  # each rate's writer has a database of its own
            subprocess.run([PY, os.path.join(TOP, "scripts/lm_writer.py"), "--uri", src.uri, "--db",
                            f"wr{rate}", "--docs", str(LIVE_DOCS), "--seconds", "0"], check=True,
                           capture_output=True)
        t0 = time.monotonic()
        tool = cls(src.uri, dst.uri)
        tool.wait_synced()
        emit(dict(base, what="initial_sync", seconds=round(time.monotonic() - t0, 2),
                  docs=seeded_docs))
        time.sleep(float(os.environ.get("LM_PEERS_WARMUP") or 5))
        s, d = client(src.uri), client(dst.uri)
        for rate in LIVE_RATES:
            c0d, c0s = dst.cpu(), src.cpu()
            w = subprocess.Popen([PY, os.path.join(TOP, "scripts/lm_writer.py"), "--uri", src.uri,
                                  "--db", f"wr{rate}", "--docs", str(LIVE_DOCS), "--no-load",
                                  "--seconds", str(LIVE_SECONDS), "--rate", str(rate), "--seed", "7"],
                                 stdout=subprocess.PIPE, text=True)
            lags, early, t_w = [], [], time.monotonic()
            probes, stop = [], threading.Event()
            pt = threading.Thread(target=probe, args=(stop, s, d, probes))
            pt.start()
            while w.poll() is None:
                v = tool.lag()
                if v is not None:  # see LAG_SKIP_S
                    (early if time.monotonic() - t_w < LAG_SKIP_S else lags).append(v)
                time.sleep(0.25)
            stop.set()
            pt.join()
            wr = json.loads(w.stdout.read())
            t_stop = time.monotonic()
            drained = None
            while time.monotonic() - t_stop < 300:
                if same_data(s, d, [f"wr{rate}"]):
                    drained = round(time.monotonic() - t_stop, 2)
                    break
                time.sleep(0.25)
            dcpu = dst.cpu() - c0d
            emit(dict(base, what="rate", rate=rate, ops=wr["ops"],
                      held_ops_per_s=round(wr["ops"] / wr["seconds"], 1),
                      lag_p50=pct(lags, 50), lag_p99=pct(lags, 99),
                      lag_max=max(lags) if lags else None, samples=len(lags),
                      lag_max_first_s=max(early) if early else None, drain_s=drained,
                      probe_p50=pct(probes, 50), probe_p99=pct(probes, 99),
                      probe_max=max(probes) if probes else None, probes=len(probes),
                      dst_cpu_s=round(dcpu, 2), src_cpu_s=round(src.cpu() - c0s, 2),
                      dst_cpu_ms_per_change=round(dcpu * 1000 / max(wr["ops"] + len(probes), 1), 2),
                      dst_cpu_util=round(dcpu / (time.monotonic() - t_stop + wr["seconds"]), 3)))
        cut_s, info = tool.cutover()
        cpu, rss = tool.stop()
        tool = None
        emit(dict(base, what="cutover", seconds=round(cut_s, 2), cpu_s=cpu, max_rss_mb=rss,
                  check=check(src.uri, dst.uri), **info))
    except Exception as e:  # noqa: BLE001 - reported; the other tool is still measured
        say(f"bench/peers: live {cls.name}: {e}")
        emit(dict(base, what="error", error=str(e)[-600:]))
    finally:
        if tool is not None:
            tool.stop()
        dst.stop()
        src.stop()


def live_workload():
    seeded = n(20000) + LIVE_DOCS * len(LIVE_RATES)
    say(f"== live: {n(20000)} base docs + {LIVE_DOCS} per writer database; rates {LIVE_RATES} ops/s "
        f"for {LIVE_SECONDS:.0f} s each")
    tools = [LivemigLive]
    if peer("pcsm"):
        tools.append(PcsmLive)
    else:
        say(f"bench/peers: no pcsm in {PEERS}: live sync is measured for livemig alone")
    for cls in tools:
        live_one(cls, seeded)


# ---- report ----

def med(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt(v, f="%.1f"):
    return "-" if v is None else f % v


def verdict(c):
    if not c:
        return "not checked"
    if c.get("differences") is None:
        return c["kinds"][0]
    s = f"{c['differences']} differences"
    if c["kinds"]:
        s += " (" + "; ".join(c["kinds"][:3]) + ")"
    if c.get("ignored"):
        s += "; not compared: " + ", ".join(c["ignored"])
    return s


def md(s):
    """s for a markdown table cell."""
    return str(s).replace("|", "\\|")


def report():
    targets = []
    copies = [w for w in dict.fromkeys(r["workload"] for r in results if r.get("what") == "seeded")]
    for w in copies:
        rows = [r for r in results if r["workload"] == w and r.get("tool") and r["round"] > 0]
        docs = next(r["docs"] for r in results if r["workload"] == w and r.get("what") == "seeded")
        search = [r for r in results if r["workload"] == w and r.get("round") == 0]
        print(f"\n### {w} ({docs} documents)\n")
        if search:
            print("Settings pass (one run each): " + ", ".join(
                f"{r['tool'].replace('dump|restore ', '')} {fmt(r.get('seconds'))} s" for r in search)
                  + " (the best of them is the tuned contender)")
            print()
        print("| tool | median s | docs/s | s / livemig s | client CPU s | CPU s per 1M docs | "
              "peak RSS MB | source CPU s | target CPU s | fidelity (round 1) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        tools = list(dict.fromkeys(r["tool"] for r in rows))
        lm = med([r for r in rows if r["tool"] == "livemig"], "seconds")
        figs = {}
        for t in tools:
            tr = [r for r in rows if r["tool"] == t]
            s, cpu = med(tr, "seconds"), med(tr, "cpu_s")
            figs[t] = (s, cpu)
            chk = next((r["check"] for r in tr if r.get("check")), None)
            errs = [r["error"] for r in tr if r.get("error")]
            print(f"| {md(t)} | {fmt(s)} | {fmt(docs / s if s else None, '%.0f')} | "
                  f"{fmt(s / lm if s and lm else None, '%.2f')} | {fmt(cpu, '%.2f')} | "
                  f"{fmt(cpu / docs * 1e6 if cpu is not None else None, '%.1f')} | "
                  f"{fmt(med(tr, 'max_rss_mb'), '%.0f')} | {fmt(med(tr, 'src_cpu_s'))} | "
                  f"{fmt(med(tr, 'dst_cpu_s'))} | {md(verdict(chk) if not errs else 'error: ' + errs[0][:80])} |")
        peers = {t: f for t, f in figs.items() if t != "livemig" and f[0]}
        if lm and peers:
            bt = min(peers, key=lambda t: peers[t][0])
            bc = min(peers, key=lambda t: peers[t][1] if peers[t][1] is not None else 1e9)
            lcpu = figs["livemig"][1]
            lchk = next((r["check"] for r in rows if r["tool"] == "livemig" and r.get("check")), {})
            targets.append((w, peers[bt][0] / lm, bt, lcpu / peers[bc][1] if peers[bc][1] else None, bc,
                            lchk.get("differences")))
    live = [r for r in results if r["workload"] == "live"]
    if live:
        print("\n### live sync\n")
        print("| tool | initial sync s | rate offered | held ops/s | lag p50 / p99 / max s (own figure) | "
              "max in the first 2 s | probe lag p50 / p99 / max s | drain s | target CPU s | "
              "target CPU ms per change | source CPU s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in live:
            if r["what"] == "rate":
                init = next((x["seconds"] for x in live if x["tool"] == r["tool"]
                             and x["what"] == "initial_sync"), None)
                print(f"| {r['tool']} | {fmt(init)} | {r['rate']} | {r['held_ops_per_s']} | "
                      f"{r['lag_p50']:.2f} / {r['lag_p99']:.2f} / {fmt(r['lag_max'], '%.2f')} | "
                      f"{fmt(r['lag_max_first_s'], '%.2f')} | "
                      f"{fmt(r.get('probe_p50'), '%.2f')} / {fmt(r.get('probe_p99'), '%.2f')} / "
                      f"{fmt(r.get('probe_max'), '%.2f')} | "
                      f"{fmt(r['drain_s'], '%.2f') if r['drain_s'] is not None else 'not equal in 300 s'} | "
                      f"{r['dst_cpu_s']} | {r['dst_cpu_ms_per_change']} | {r['src_cpu_s']} |")
        print("\n| tool | cutover / finalize: to COMPLETE s | to the tool's exit s | fidelity after |"
              "\n|---|---|---|---|")
        for r in live:
            if r["what"] == "cutover":
                extra = " (forced)" if r.get("forced") else ""
                done = r.get("to_complete_s", r["seconds"])
                print(f"| {r['tool']} | {fmt(done, '%.2f')}{extra} | {r['seconds']:.2f} | "
                      f"{verdict(r['check'])} |")
            elif r["what"] == "error":
                print(f"| {r['tool']} | error | | {r['error'][:120]} |")
    live_targets(live)
    if targets:
        print("\n### issue-18 copy targets\n")
        print("| workload | best peer by time | its s / livemig s (target >= 1.2) | "
              "livemig CPU / best peer CPU (target <= 0.33) | livemig differences (target 0) |")
        print("|---|---|---|---|---|")
        for w, ratio, bt, cr, bc, diffs in targets:
            print(f"| {w} | {md(bt)} | {ratio:.2f}: {'met' if ratio >= 1.2 else 'missed'} | "
                  f"{fmt(cr, '%.2f')} (vs {md(bc)}): {'met' if cr is not None and cr <= 1 / 3 else 'missed'} | "
                  f"{'not checked' if diffs is None else diffs} |")


def live_targets(live):
    """The issue-18 stream targets, livemig against PCSM, rate by rate."""
    def pick(tool, what, rate=None):
        return next((r for r in live if r["tool"] == tool and r["what"] == what
                     and (rate is None or r.get("rate") == rate)), None)
    lines = []
    for rate in LIVE_RATES:
        a, b = pick("livemig", "rate", rate), pick("pcsm", "rate", rate)
        if not a:
            continue
        p99 = f"livemig {a['lag_p99']:.2f} s: {'met' if a['lag_p99'] < 1 else 'missed'}"
        if b:
            p99 += (f"; PCSM {b['lag_p99']:.2f} s (whole seconds): "
                    f"{'no worse' if a['lag_p99'] <= b['lag_p99'] else 'worse'}")
            cpu = (f"livemig {a['dst_cpu_ms_per_change']} ms, PCSM {b['dst_cpu_ms_per_change']} ms: "
                   f"{'met' if a['dst_cpu_ms_per_change'] <= b['dst_cpu_ms_per_change'] else 'missed'} "
                   f"({a['dst_cpu_ms_per_change'] / max(b['dst_cpu_ms_per_change'], 1e-9):.2f}x)")
        else:
            cpu = f"livemig {a['dst_cpu_ms_per_change']} ms (no PCSM figure)"
        lines.append(f"| stream p99 lag < 1 s and <= PCSM's, {rate} ops/s | {p99} |")
        if b and a.get("probe_p99") is not None and b.get("probe_p99") is not None:
            lines.append(f"| the same by the probe (one method for both), {rate} ops/s | livemig "
                         f"{a['probe_p99']:.2f} s: {'met' if a['probe_p99'] < 1 else 'missed'}; PCSM "
                         f"{b['probe_p99']:.2f} s: {'no worse' if a['probe_p99'] <= b['probe_p99'] else 'worse'} |")
        lines.append(f"| target CPU per change <= PCSM's, {rate} ops/s | {cpu} |")
    a, b = pick("livemig", "cutover"), pick("pcsm", "cutover")
    if a:
        done = a.get("to_complete_s")
        if done is None:  # no "entering phase COMPLETE" in its log (a quieter log level)
            s = f"livemig: COMPLETE not logged; {a['seconds']:.2f} s to its exit (with its verification)"
        else:
            s = (f"livemig {done:.2f} s to COMPLETE: {'met' if done <= 1 else 'missed'} "
                 f"({a['seconds']:.2f} s to its exit, after its verification of the target)")
        if b:
            s += f"; PCSM finalize {b['seconds']:.2f} s"
        lines.append(f"| cutover <= 1 s | {s} |")
        lines.append(f"| fidelity after the cutover: 0 differences | livemig {a['check'].get('differences')}"
                     + (f", PCSM {b['check'].get('differences')}" if b else "") + " |")
    if lines:
        print("\n### issue-18 stream targets\n\n| target | figure |\n|---|---|")
        print("\n".join(lines))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--report":  # the tables again, from saved output
        results.extend(json.loads(line) for line in open(sys.argv[2]) if line.startswith("{"))
        report()
        return
    for x in (AGENT, BENCH):
        if not os.access(x, os.X_OK):
            usage_error(f"{x} is not built (cmake --build build)")
    chosen = (os.environ.get("LM_PEERS_WORKLOADS") or " ".join(ALL)).replace(",", " ").split()
    for w in chosen:
        if w not in ALL:
            usage_error(f"unknown workload {w!r}: choose from {' '.join(ALL)}")
    for name in ("mongodump", "mongorestore", "pcsm"):
        if not peer(name):
            say(f"bench/peers: {name} not found in {PEERS}: its contender is skipped "
                f"(unpack the peers with /work/shared/peers/unpack DIR and set LM_PEERS_DIR=DIR)")
    global WORK
    WORK = tempfile.mkdtemp(prefix="lm-bench-peers-")
    say(f"bench/peers: scale {SCALE}, {ROUNDS} rounds, work dir {WORK}")
    t0 = time.monotonic()
    try:
        for w in chosen:
            if w == "live":
                live_workload()
            else:
                copy_workload(w)
        report()
        print(f"\n(total {time.monotonic() - t0:.0f} s)")
    finally:
        testbed_stop_all()
        if os.environ.get("LM_PEERS_KEEP"):
            say(f"kept {WORK}")
        else:
            subprocess.run(["rm", "-rf", WORK])


if __name__ == "__main__":
    main()
