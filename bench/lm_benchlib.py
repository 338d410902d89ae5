"""Helpers shared by the Python benchmarks (bench/lm_stream_bench.py, bench/lm_peers_bench.py,
the probes): test-bed servers, free ports, percentiles, a process's CPU and peak RSS from
/proc, the time of an agent's log line.

Servers are started by scripts/testbed with this process as their owner (they stop when it
dies) and stopped by their directory, never by name.
"""

import datetime
import os
import socket
import subprocess

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTBED = os.path.join(TOP, "scripts/testbed")
PY = os.path.join(TOP, ".deps/venv/bin/python")
BENCH = os.path.join(TOP, "build/bench/lm_bench")
AGENT = os.environ.get("LM_BENCH_AGENT") or os.path.join(TOP, "build/agent/livemig-agent")
CLK_TCK = os.sysconf("SC_CLK_TCK")

started = []  # test-bed directories this process started and has not stopped


def testbed_start(*extra):
    """Starts a SecantusDB; returns its KEY=VALUE lines as a dict (LM_TB_URI, LM_TB_DIR,
    LM_TB_PID, ...)."""
    out = subprocess.run([TESTBED, "start", "secantus", "--owner-pid", str(os.getpid()),
                          "--max-seconds", "7200", *extra], check=True, capture_output=True,
                         text=True).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    started.append(env["LM_TB_DIR"])
    return env


def testbed_stop(d):
    subprocess.run([TESTBED, "stop", d], capture_output=True)
    if d in started:
        started.remove(d)


def testbed_stop_all():
    for d in list(started):
        testbed_stop(d)


def log_time(text, needle):
    """The time (seconds since the epoch) of the first line of an agent's log that holds
    `needle`, from the line's own timestamp (2026-11-30T17:35:50.214Z ...); None if no line
    with a timestamp holds it."""
    for line in text.splitlines():
        if needle in line:
            try:
                return datetime.datetime.fromisoformat(
                    line.split()[0].replace("Z", "+00:00")).timestamp()
            except (ValueError, IndexError):  # not a log line with a timestamp
                continue
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    """The p-th percentile (nearest rank) of values; nan when there are none."""
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def proc_cpu(pid):
    """CPU seconds (user + system, all threads) process pid has used so far; None when it
    is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_peak_rss_mb(pid):
    """Peak resident set (VmHWM) of process pid in MB; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None
