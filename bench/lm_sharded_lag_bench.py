"""bench/sharded --lag: a sharded migration's lag under a live write load, per shard count.

Run through bench/sharded (which checks the build). For each shard count S, on 127.0.0.1:
 1. A source and a target sharded bed of S shards (scripts/testbed start sharded).
 2. lm_writer.py --sharded loads --docs documents into the source and shards their
    collection (routed to the shards by the bed's client-side router).
 3. livemig-agent migrate from the source's router to the target's (--no-verify) copies and
    streams; once every shard streams, --warmup seconds pass.
 4. lm_writer.py --sharded at --rate operations per second (the same total rate at every
    shard count: inserts, every update form, deletes) for --seconds, while the status API is
    sampled every 250 ms: the overall lagTimeSeconds (the worst shard's) and each shard's.
 5. Cutover; the agent must exit 0.
Prints one JSON line per shard count and a markdown table (p50/p99 of the overall lag, the
worst shard's p99, the rate the writer held).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lm_benchlib import AGENT, PY, TESTBED, TOP, free_port, pct  # noqa: E402

WRITER = os.path.join(TOP, "scripts/lm_writer.py")
beds = []


def bed(shards, prefix):
    out = subprocess.run([TESTBED, "start", "sharded", "--shards", str(shards), "--prefix", prefix,
                          "--owner-pid", str(os.getpid()), "--max-seconds", "7200"], check=True,
                         capture_output=True, text=True).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    beds.append(env["LM_TB_DIR"])
    return env


def status(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def wait_ready(port, agent, timeout=300):
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if agent.poll() is not None:
            raise SystemExit(f"bench/sharded: the agent ended early (exit {agent.returncode})")
        s = status(port)
        if s and s.get("phase") == "STREAMING" and s.get("readyForCutover"):
            return
        time.sleep(0.25)
    raise SystemExit("bench/sharded: the migration never became ready for cutover")


def one(shards, args, work):
    src, dst = bed(shards, f"ls{shards}"), bed(shards, f"ld{shards}")
    cfg = src["LM_TB_CONFIG_URI"]
    subprocess.run([PY, WRITER, "--sharded", "--uri", cfg, "--seconds", "0", "--docs",
                    str(args.docs)], check=True, capture_output=True)
    port = free_port()
    log = open(os.path.join(work, f"agent-{shards}.log"), "w")
    agent = subprocess.Popen([AGENT, "migrate", "--source", src["LM_TB_URI"], "--target",
                              dst["LM_TB_URI"], "--state-dir", os.path.join(work, f"st-{shards}"),
                              "--status-addr", f"127.0.0.1:{port}", "--cutover-lag", "30s",
                              "--no-verify"], stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port, agent)
    time.sleep(args.warmup)
    writer = subprocess.Popen([PY, WRITER, "--sharded", "--uri", cfg, "--no-load", "--docs",
                               str(args.docs), "--rate", str(args.rate), "--seconds",
                               str(args.seconds), "--seed", str(shards)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lags, worst_shard = [], {}
    t0 = time.monotonic()
    while writer.poll() is None:
        s = status(port)
        if s and s.get("lagTimeSeconds") is not None:
            lags.append(float(s["lagTimeSeconds"]))
            for sh in s.get("shards", []):
                if sh.get("lagTimeSeconds") is not None:
                    worst_shard.setdefault(sh["name"], []).append(float(sh["lagTimeSeconds"]))
        time.sleep(0.25)
    took = time.monotonic() - t0
    out = writer.stdout.read().strip().splitlines()
    ops = json.loads(out[-1])["ops"] if out else 0
    wait_ready(port, agent)
    subprocess.run([AGENT, "cutover", "--state-dir", os.path.join(work, f"st-{shards}"),
                    "--status-addr", f"127.0.0.1:{port}"], check=True, capture_output=True)
    rc = agent.wait(timeout=300)
    if rc != 0:
        raise SystemExit(f"bench/sharded: the agent exited {rc} (log {log.name})")
    return {"shards": shards, "rate_asked": args.rate, "ops": ops,
            "rate_held": round(ops / args.seconds, 1), "sampled_s": round(took, 1), "samples": len(lags),
            "lag_p50_s": round(pct(lags, 50), 3), "lag_p99_s": round(pct(lags, 99), 3),
            "lag_max_s": round(max(lags), 3) if lags else None,
            "worst_shard_p99_s": round(max(pct(v, 99) for v in worst_shard.values()), 3)
            if worst_shard else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("counts", nargs="*", type=int, default=[1, 2, 3])
    ap.add_argument("--rate", type=int, default=50, help="writer operations per second (total)")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--warmup", type=float, default=5)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lm-bench-sharded-lag-") as work:
        try:
            for s in args.counts:
                print(f"== {s} shard(s): {args.rate} ops/s for {args.seconds:.0f} s", file=sys.stderr)
                r = one(s, args, work)
                print(json.dumps(r), flush=True)
                rows.append(r)
                while beds:
                    subprocess.run([TESTBED, "stop", beds.pop()], capture_output=True)
        finally:
            while beds:
                subprocess.run([TESTBED, "stop", beds.pop()], capture_output=True)
    print("\n| shards | writer ops/s (asked / held) | lag p50 (s) | lag p99 (s) | lag max (s) | "
          "worst shard's p99 (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shards']} | {r['rate_asked']} / {r['rate_held']} | {r['lag_p50_s']} | "
              f"{r['lag_p99_s']} | {r['lag_max_s']} | {r['worst_shard_p99_s']} |")


if __name__ == "__main__":
    main()
