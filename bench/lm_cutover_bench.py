"""bench/cutover: how long the operator's downtime lasts (issue 18): from the cutover
request to COMPLETE, with the lag near zero, for one or two agent builds alternating.

Run through bench/cutover. Per round and per build, all on 127.0.0.1:
 1. Two fresh SecantusDB servers; the source gets --docs documents (lm_writer.py).
 2. livemig-agent migrate copies them and streams; scripts/lm_writer.py writes for
    --seconds at --rate ops/s (the standard mix; with --ddl its creates, drops and index
    builds too), then stops.
 2b. With --queued-index-builds N: the agent is stopped (SIGTERM), the source gets a
    collection of --big-docs documents and N index builds on it, the agent resumes (the
    builds now wait in the source's oplog: the demo's case).
 3. The bench waits for readyForCutover (and, without --ddl or 2b, lagTimeSeconds 0), notes the
    source's newest oplog entry and sends the cutover (livemig-agent cutover); the figure
    is the time from sending it to the agent's exit (COMPLETE, exit 0).
 4. The cutoff position the agent printed must equal the source's newest entry, and
    scripts/lm_check.py must find 0 differences; otherwise the bench fails.
Prints one JSON line per cutover and, per build, the medians and each figure: from sending
the request to the agent's exit, and from the request as the agent logged it to its
"entering phase COMPLETE" line (both builds log both).
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = os.path.join(TOP, ".deps/venv/bin/python")
started = []

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lm_benchlib import log_time  # noqa: E402



def has_verify(agent):
    """Whether this agent build verifies after a cutover (builds before issue 19 do not)."""
    h = subprocess.run([agent, "migrate", "--help"], capture_output=True, text=True)
    return "--no-verify" in h.stdout + h.stderr

def testbed_start(*extra):
    out = subprocess.run([os.path.join(TOP, "scripts/testbed"), "start", "secantus", "--owner-pid",
                          str(os.getpid()), "--max-seconds", "7200", *extra], check=True,
                         capture_output=True, text=True).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    started.append(env["LM_TB_DIR"])
    return env["LM_TB_URI"], env["LM_TB_DIR"]


def testbed_stop(d):
    subprocess.run([os.path.join(TOP, "scripts/testbed"), "stop", d], capture_output=True)
    if d in started:
        started.remove(d)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def newest_entry(uri):
    from pymongo import MongoClient
    c = MongoClient(uri, directConnection=True)
    e = c.local["oplog.rs"].find().sort("$natural", -1).limit(1).next()
    c.close()
    return (e["ts"].time, e["ts"].inc)


def one(agent, a, rnd, label, work):
    src, sdir = testbed_start("--oplog-max-entries", "2000000")
    dst, ddir = testbed_start()
    try:
        d = os.path.join(work, f"{label}-{rnd}")
        os.makedirs(d)
        subprocess.run([PY, os.path.join(TOP, "scripts/lm_writer.py"), "--uri", src, "--seconds",
                        "0", "--docs", str(a.docs)], check=True, capture_output=True)
        port = free_port()
        state = os.path.join(d, "state")
        log = open(os.path.join(d, "agent.log"), "w")
        agent_argv = [agent, "migrate", "--source", src, "--target", dst, "--state-dir", state,
                      "--status-addr", f"127.0.0.1:{port}", "--cutover-lag", a.cutover_lag]
        if has_verify(agent):  # the exit time measures the cutover, not the verification after it
            agent_argv.append("--no-verify")
        agent_p = subprocess.Popen(agent_argv, stdout=log, stderr=subprocess.STDOUT)
        while (status(port) or {}).get("phase") != "STREAMING":
            if agent_p.poll() is not None:
                sys.exit(f"bench/cutover: the agent ended before streaming ({d}/agent.log)")
            time.sleep(0.1)
        wargs = [PY, os.path.join(TOP, "scripts/lm_writer.py"), "--uri", src, "--no-load",
                 "--docs", str(a.docs), "--seconds", str(a.seconds), "--rate", str(a.rate)]
        if a.ddl:
            wargs.append("--ddl")
        subprocess.run(wargs, check=True, capture_output=True)
        if a.queued_index_builds:
            # the demo's case: index builds waiting in the source's oplog when the job says
            # ready. Made while the agent is stopped (SIGTERM, exit 3), so that all of them
            # wait when it resumes from its checkpoint.
            agent_p.send_signal(signal.SIGTERM)
            if agent_p.wait(timeout=120) != 3:
                sys.exit(f"bench/cutover: the agent did not stop cleanly ({d}/agent.log)")
            from pymongo import MongoClient
            c = MongoClient(src, directConnection=True)
            big = c.wr.big
            for s0 in range(0, a.big_docs, 1000):
                big.insert_many([{"_id": i, **{f"f{k}": (i * (k + 7)) % 1000003
                                               for k in range(a.queued_index_builds)}}
                                 for i in range(s0, min(s0 + 1000, a.big_docs))])
            for k in range(a.queued_index_builds):
                big.create_index(f"f{k}")
            c.close()
            agent_p = subprocess.Popen(agent_argv, stdout=log, stderr=subprocess.STDOUT)
            while (status(port) or {}).get("phase") != "STREAMING":
                if agent_p.poll() is not None:
                    sys.exit(f"bench/cutover: the agent did not resume ({d}/agent.log)")
                time.sleep(0.05)
        t_ready = time.time()
        while True:
            s = status(port) or {}
            if s.get("readyForCutover") and (a.ddl or a.queued_index_builds or
                                             s.get("lagTimeSeconds") == 0):
                break
            if agent_p.poll() is not None or time.time() - t_ready > 600:
                sys.exit(f"bench/cutover: never ready ({d}/agent.log)")
            time.sleep(0.05)
        waited_ready = time.time() - t_ready
        est = s.get("estimatedCutoverSeconds")
        newest = newest_entry(src)
        t0 = time.time()
        subprocess.run([agent, "cutover", "--state-dir", state, "--status-addr",
                        f"127.0.0.1:{port}"], check=True, capture_output=True)
        rc = agent_p.wait(timeout=900)
        t_exit = time.time()
        took = t_exit - t0
        log.close()
        text = open(os.path.join(d, "agent.log")).read()
        m = re.search(r"every change up to Timestamp\((\d+), (\d+)\)", text)
        cutoff = (int(m.group(1)), int(m.group(2))) if m else None
        # where the time went: the request as the agent logged it, and its exit
        t_req = log_time(text, "cutover requested through the status API")
        t_complete = log_time(text, "entering phase COMPLETE")
        steps = [(m.group(1), int(m.group(2))) for m in
                 re.finditer(r"cutover step: (.*) \(\+(\d+) ms\)", text)]
        check = subprocess.run([PY, os.path.join(TOP, "scripts/lm_check.py"), "--source", src,
                                "--target", dst], capture_output=True, text=True)
        rec = {"binary": label, "round": rnd, "cutover_s": round(took, 3), "agent_exit": rc,
               "ready_after_writer_s": round(waited_ready, 2), "estimated_s": est,
               "cutoff_is_source_newest": cutoff == newest,
               "request_logged_after_s": round(t_req - t0, 3) if t_req else None,
               "complete_after_request_s": round(t_complete - t_req, 3)
               if t_req and t_complete else None,
               "exit_after_request_s": round(t_exit - t_req, 3) if t_req else None,
               "steps_ms": steps if a.steps else None,
               "check_rc": check.returncode, "check": check.stdout.strip().splitlines()[-1:]}
        print(json.dumps(rec), flush=True)
        if rc != 0 or check.returncode != 0 or cutoff != newest:
            sys.exit(f"bench/cutover: wrong outcome ({d}): {rec}")
        return rec
    finally:
        testbed_stop(sdir)
        testbed_stop(ddir)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("agents", nargs="+", help="one or two livemig-agent binaries")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--ddl", action="store_true", help="the writer also creates, drops, indexes")
    ap.add_argument("--cutover-lag", default="10s")
    ap.add_argument("--queued-index-builds", type=int, default=0,
                    help="N index builds on --big-docs documents wait in the source's oplog; "
                         "the cutover is sent as soon as readyForCutover says yes")
    ap.add_argument("--big-docs", type=int, default=10000)
    ap.add_argument("--steps", action="store_true", help="print the agent's timing lines")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (agent logs)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="lm-bench-cutover-")
    results, completes = {}, {}
    try:
        for rnd in range(a.rounds):
            for i, agent in enumerate(a.agents):
                label = "AB"[i]
                r = one(agent, a, rnd, label, work)
                results.setdefault(label, []).append(r["cutover_s"])
                completes.setdefault(label, []).append(r["complete_after_request_s"])
    finally:
        for d in list(started):
            testbed_stop(d)
    print()
    for i, agent in enumerate(a.agents):
        v = results.get("AB"[i], [])
        c = [x for x in completes.get("AB"[i], []) if x is not None]
        print(f"{'AB'[i]} {agent}: request -> exit: median {statistics.median(v):.3f} s over "
              f"{len(v)} cutovers: {', '.join(f'{x:.3f}' for x in v)}; request (as logged) -> "
              f"COMPLETE: median {statistics.median(c) if c else float('nan'):.3f} s: "
              f"{', '.join(f'{x:.3f}' for x in c)}")
    if len(a.agents) == 2:
        ra = statistics.median(results["A"])
        rb = statistics.median(results["B"])
        print(f"B / A = {rb / ra:.3f}")
    if a.keep:
        print(f"kept {work}")
    else:
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
