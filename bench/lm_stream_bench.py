"""bench/stream: how much live write load livemig keeps up with, and how fast it drains.

Run through bench/stream (which checks the build). Steps, all on 127.0.0.1:
 1. Two SecantusDB servers; the source gets D docs (default 100 000, ~200 B) in bench.c000.
 2. livemig-agent migrate (defaults: apply workers chosen by the apply, oplog capture) copies them and streams;
    15 s of warm-up (--warmup) let its first continuity checks pass.
 3. Rising rates: `lm_bench load` runs the 50/40/10 insert/update/delete mix at R ops/s for
    S seconds (default 60) while lagTimeSeconds is sampled from the status API every 250 ms.
    The sustained rate is the highest R whose p99 lag stayed under 2 s (and that the source
    itself took: the load reports the rate it held). Between rates the target drains.
 4. Half the sustained rate for S seconds: its p99 lag (target < 1 s).
 5. Drain: the agent is stopped (SIGTERM) while the load runs S seconds at the sustained
    rate, then started again with the load off; it resumes from its checkpoint. Drain rate
    = changes applied / time from STREAMING until the applied position reaches the
    source's newest entry.
 6. The apply ceiling: `lm_bench applyceil`, the same number of ops of the same mix as runs
    of distinct _ids, one unordered command per kind, on a fresh target seeded the same way
    before each trial: a search
    over 1, 2, 4 and 8 threads, the best is the ceiling.
 7. Cutover, then scripts/lm_check.py: the target must equal the source.
Prints one JSON line per measurement and a markdown summary.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lm_benchlib import AGENT, BENCH, PY, TOP, free_port, pct, started, testbed_stop  # noqa: E402
from lm_benchlib import testbed_start as _testbed_start  # noqa: E402


def testbed_start(*extra):
    env = _testbed_start(*extra)
    return env["LM_TB_URI"], env["LM_TB_DIR"]


def status(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def emit(rec):
    print(json.dumps(rec), flush=True)
    return rec


def seed(uri, docs, threads=2):
    subprocess.run([BENCH, "ceiling", "--target", uri, "--db", "bench", "--docs", str(docs),
                    "--doc-bytes", "200", "--threads", str(threads)], check=True, capture_output=True)


CEIL_THREADS = (1, 2, 4, 8)
LOAD_THREADS = 1
LAG_LOG = None


def load_cmd(src, docs, first_id, rate, seconds):
    return [BENCH, "load", "--uri", src, "--db", "bench", "--docs", str(docs), "--first-id",
            str(first_id), "--rate", str(rate), "--seconds", str(seconds), "--threads",
            str(LOAD_THREADS)]


def run_load(src, docs, first_id, rate, seconds, port, agent):
    """Runs the load while sampling lag; returns (load report, lag samples)."""
    p = subprocess.Popen(load_cmd(src, docs, first_id, rate, seconds),
                         stdout=subprocess.PIPE, text=True)
    lags = []
    while p.poll() is None:
        s = status(port)
        if s is not None:
            lags.append(float(s.get("lagTimeSeconds") or 0))
            if LAG_LOG:
                print(f"{time.strftime('%H:%M:%S')} lag {lags[-1]:.2f}", file=LAG_LOG, flush=True)
        if agent.poll() is not None:
            sys.exit("bench/stream: the agent ended during the load")
        time.sleep(0.25)
    return json.loads(p.stdout.read()), lags


def wait_caught_up(port, timeout=600):
    """Waits until lag is 0; returns the seconds it took."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        s = status(port)
        if s and s.get("phase") == "STREAMING" and s.get("lagTimeSeconds") == 0:
            return time.time() - t0
        time.sleep(0.1)
    sys.exit("bench/stream: the target did not catch up within %d s" % timeout)


def ops_applied(port):
    s = status(port) or {}
    return int(s.get("stream", {}).get("opsApplied", 0))


def newest_entry(uri):
    """The source's newest oplog entry as (t, i)."""
    from pymongo import MongoClient
    e = MongoClient(uri).local["oplog.rs"].find().sort("$natural", -1).limit(1).next()
    return (e["ts"].time, e["ts"].inc)


def applied_optime(port):
    a = (status(port) or {}).get("stream", {}).get("appliedOptime") or {}
    return (int(a.get("t", 0)), int(a.get("i", 0)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rates", default="250,500,1000,1500,2000,3000,4000")
    ap.add_argument("--load-threads", type=int, default=2)
    ap.add_argument("--oplog-entries", type=int, default=2000000)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (agent log)")
    ap.add_argument("--warmup", type=float, default=15)
    a = ap.parse_args()
    global LOAD_THREADS, LAG_LOG
    LOAD_THREADS = a.load_threads
    work = tempfile.mkdtemp(prefix="lm-bench-stream-")
    if a.keep:
        LAG_LOG = open(os.path.join(work, "lag.log"), "w")
    agent = None
    results = []
    try:
        # the source's oplog holds the whole run: SecantusDB slows to a crawl once every
        # write also trims a full oplog (its default cap is 100 000 entries)
        src, _ = testbed_start("--oplog-max-entries", str(a.oplog_entries))
        dst, _ = testbed_start()
        seed(src, a.docs)
        port = free_port()
        log = open(os.path.join(work, "agent.log"), "w")
        argv = [AGENT, "migrate", "--source", src, "--target", dst, "--state-dir",
                os.path.join(work, "state"), "--status-addr", f"127.0.0.1:{port}"]
        if a.keep:
            argv += ["--log-level", "debug"]
        agent = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_caught_up(port)
        # warm-up: the stream's first continuity checks (docs/DEVELOPERS.md) come in its
        # first seconds; on SecantusDB each count stalls the server ~3 s per 100k entries
        time.sleep(a.warmup)
        wait_caught_up(port)
        first_id = a.docs
        sustained = 0
        for rate in [int(r) for r in a.rates.split(",")]:
            load, lags = run_load(src, a.docs, first_id, rate, a.seconds, port, agent)
            first_id = load["next_id"]
            held = load["ops_per_s"] >= 0.95 * rate
            rec = emit({"what": "rate", "rate": rate, "held_ops_per_s": load["ops_per_s"],
                        "source_kept_up": held, "lag_p50": pct(lags, 50), "lag_p99": pct(lags, 99),
                        "lag_max": max(lags) if lags else None, "samples": len(lags),
                        "drain_after_s": round(wait_caught_up(port), 2)})
            results.append(rec)
            if not held or rec["lag_p99"] >= 2:
                break
            sustained = rate
        if sustained == 0:
            sys.exit("bench/stream: no rate was sustained")
        half = sustained // 2
        load, lags = run_load(src, a.docs, first_id, half, a.seconds, port, agent)
        first_id = load["next_id"]
        results.append(emit({"what": "half", "rate": half, "held_ops_per_s": load["ops_per_s"],
                             "lag_p50": pct(lags, 50), "lag_p99": pct(lags, 99),
                             "lag_max": max(lags) if lags else None}))
        wait_caught_up(port)

        # drain: the agent stopped (SIGTERM: checkpoint, exit 3) while the load runs, then
        # started again with the load off. (SIGSTOP would leave its cursor open, and a
        # SecantusDB tailable cursor whose reader stalls stalls the server's writers too.)
        agent.send_signal(signal.SIGTERM)
        if agent.wait(timeout=60) != 3:
            sys.exit("bench/stream: the agent did not stop cleanly on SIGTERM")
        p = subprocess.run(load_cmd(src, a.docs, first_id, sustained, a.seconds),
                           capture_output=True, text=True, check=True)
        load = json.loads(p.stdout)
        newest = newest_entry(src)
        agent = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        while (status(port) or {}).get("phase") != "STREAMING":
            if agent.poll() is not None:
                sys.exit("bench/stream: the agent did not resume")
            time.sleep(0.02)
        t0 = time.time()
        while applied_optime(port) < newest:
            if time.time() - t0 > 1200:
                sys.exit("bench/stream: the backlog did not drain within 1200 s")
            time.sleep(0.05)
        took = time.time() - t0
        applied = ops_applied(port)
        wait_caught_up(port)
        drain = emit({"what": "drain", "backlog_ops": load["ops"], "applied": applied,
                      "seconds": round(took, 2), "ops_per_s": round(applied / took, 1)})
        results.append(drain)

        # the apply ceiling is a search over writer threads (issue 18: a ceiling with a fixed
        # thread count can share the copier's flaw): each trial on a fresh target seeded the
        # same way (no trial inherits the one before's server state), the best is the ceiling
        trials = {}
        for threads in CEIL_THREADS:
            ceil_uri, ceil_dir = testbed_start()
            seed(ceil_uri, a.docs)
            p = subprocess.run([BENCH, "applyceil", "--target", ceil_uri, "--db", "bench", "--docs",
                                str(a.docs), "--ops", str(load["ops"]), "--threads", str(threads)],
                               capture_output=True, text=True, check=True)
            testbed_stop(ceil_dir)
            trials[threads] = json.loads(p.stdout)
            print(f"apply ceiling, {threads} threads: {trials[threads]['ops_per_s']:.0f} ops/s",
                  file=sys.stderr)
        ceiling = dict(max(trials.values(), key=lambda t: t["ops_per_s"]))
        ceiling["ops_per_s_by_threads"] = {str(t): r["ops_per_s"] for t, r in trials.items()}
        results.append(emit(ceiling))

        # the cutover needs the run's token from the state dir; a build from before the
        # authenticated status API takes no --state-dir (LM_BENCH_AGENT comparisons)
        cut = [AGENT, "cutover", "--status-addr", f"127.0.0.1:{port}", "--force"]
        if subprocess.run(cut + ["--state-dir", os.path.join(work, "state")],
                          capture_output=True).returncode != 0:
            subprocess.run([AGENT, "cutover", "--status-addr", f"127.0.0.1:{port}"], check=True,
                           capture_output=True)
        rc = agent.wait(timeout=600)
        check = subprocess.run([PY, os.path.join(TOP, "scripts/lm_check.py"), "--source", src,
                                "--target", dst], capture_output=True, text=True)
        results.append(emit({"what": "cutover", "agent_exit": rc, "check": check.stdout.strip()}))
        agent = None

        print("\n| measurement | figure |\n|---|---|")
        for r in results:
            if r["what"] == "rate":
                print(f"| {r['rate']} ops/s offered (source held {r['held_ops_per_s']:.0f}) | lag p50 "
                      f"{r['lag_p50']:.2f} s, p99 {r['lag_p99']:.2f} s, max {r['lag_max']:.2f} s |")
        print(f"| sustained rate (p99 lag < 2 s for {a.seconds:.0f} s) | **{sustained} ops/s** |")
        h = next(r for r in results if r["what"] == "half")
        print(f"| half of it, {h['rate']} ops/s | lag p99 {h['lag_p99']:.2f} s (target < 1 s) |")
        print(f"| drain after {a.seconds:.0f} s stopped | {drain['ops_per_s']:.0f} ops/s "
              f"({drain['applied']} changes in {drain['seconds']:.1f} s) |")
        print(f"| apply ceiling (lm_bench applyceil, the best of {', '.join(map(str, CEIL_THREADS))} "
              f"threads: {ceiling['threads']}; ops/s by threads {ceiling['ops_per_s_by_threads']}) | "
              f"{ceiling['ops_per_s']:.0f} ops/s |")
        print(f"| drain / ceiling | **{drain['ops_per_s'] / ceiling['ops_per_s']:.2f}** (target >= 0.7) |")
        print(f"| after cutover | {results[-1]['check']} |")
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGCONT)
            agent.kill()
            agent.wait()
        for d in list(started):
            testbed_stop(d)
        if a.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
