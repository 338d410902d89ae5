"""Regression test for a bug the chaos soak found (docs/testing.md, "The chaos soak"): the
source's oplog cursor disappears under a streaming agent (a restarted server has none of
its cursors, and the driver had reconnected before the next getMore; here: the agent is
stopped with SIGSTOP and its idle cursor killed with killCursors, which is deterministic), the getMore answers CursorNotFound (43), and the job FAILED with
"source: reading local.oplog.rs failed: cursor id ... not found". It must open the cursor
again from where it was, apply what was written meanwhile, and cut over with 0 differences.

    cursor_killed.py BUILD_DIR          (ctest: test_stream_cursor_killed)
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = os.path.join(TOP, ".deps", "venv", "bin", "python")


def testbed(*args):
    r = subprocess.run([os.path.join(TOP, "scripts", "testbed"), *args], capture_output=True, text=True,
                       check=True)
    return dict(line.split("=", 1) for line in r.stdout.split() if "=" in line)


def status(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=3) as r:
            return json.loads(r.read())
    except OSError:
        return {}


def wait(what, pred, seconds, log):
    until = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > until:
            sys.exit(f"FAIL: {what} within {seconds} s\nagent log:\n{open(log).read()[-6000:]}")
        time.sleep(0.2)


def kill_oplog_cursors(client):
    """killCursors on every open cursor over local.oplog.rs (the agent's tailing cursor; an
    idle one between getMores is what a restart leaves behind)."""
    ops = client.admin.command({"currentOp": 1, "idleCursors": True})["inprog"]
    ids = [o["cursorId"] for o in ops if o.get("type") == "idleCursor" and o.get("ns") == "local.oplog.rs"]
    if not ids:
        return 0
    r = client.local.command("killCursors", "oplog.rs", cursors=ids)
    return len(r.get("cursorsKilled", []))


def main():
    from pymongo import MongoClient
    build = os.path.abspath(sys.argv[1])
    agent = os.path.join(build, "agent", "livemig-agent")
    d = tempfile.mkdtemp(prefix="lm-cursor-killed-")
    me = str(os.getpid())
    src = testbed("start", "secantus", "--owner-pid", me, "--max-seconds", "600")
    dst = testbed("start", "secantus", "--owner-pid", me, "--max-seconds", "600")
    log = os.path.join(d, "agent.log")
    procs = []
    try:
        writer = [PY, os.path.join(TOP, "scripts", "lm_writer.py"), "--uri", src["LM_TB_URI"]]
        subprocess.run(writer + ["--seconds", "0", "--docs", "500"], check=True, capture_output=True)
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        state = os.path.join(d, "state")
        argv = [agent, "migrate", "--source", src["LM_TB_URI"], "--target", dst["LM_TB_URI"], "--state-dir",
                state, "--status-addr", f"127.0.0.1:{port}", "--cutover-lag", "30s"]
        a = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(a)
        wait("the agent streams", lambda: status(port).get("phase") == "STREAMING", 120, log)
        w = subprocess.Popen(writer + ["--no-load", "--docs", "500", "--seconds", "8", "--rate", "40"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(w)
        c = MongoClient(src["LM_TB_URI"], serverSelectionTimeoutMS=5000)
        killed = 0
        for _ in range(3):  # three times, while the writer writes
            # stopped, the agent has no getMore in flight once the last one's await is over:
            # its cursor is idle on the source, as after a restart, and is killed there
            a.send_signal(signal.SIGSTOP)
            time.sleep(2.5)
            killed += kill_oplog_cursors(c)
            a.send_signal(signal.SIGCONT)
            time.sleep(1.5)
        if killed == 0:
            sys.exit("FAIL: no idle oplog cursor of the agent's to kill")
        print(f"killed the agent's oplog cursor {killed} time(s)")
        if w.wait(timeout=60) != 0:
            sys.exit("FAIL: the writer failed")
        wait("readyForCutover after the writer stopped",
             lambda: a.poll() is not None or status(port).get("readyForCutover") is True, 120, log)
        if a.poll() is not None:
            sys.exit(f"FAIL: the agent ended (exit {a.returncode}) before the cutover:\n{open(log).read()[-6000:]}")
        r = subprocess.run([agent, "cutover", "--state-dir", state, "--status-addr", f"127.0.0.1:{port}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"FAIL: livemig-agent cutover: {r.stdout}{r.stderr}")
        rc = a.wait(timeout=120)
        text = open(log).read()
        if rc != 0 or "livemig migration COMPLETE" not in text:
            sys.exit(f"FAIL: agent exit {rc}:\n{text[-6000:]}")
        if "not found); reconnecting" not in text:
            sys.exit(f"FAIL: the agent's log does not say it opened the cursor again:\n{text[-6000:]}")
        r = subprocess.run([PY, os.path.join(TOP, "scripts", "lm_check.py"), "--source", src["LM_TB_URI"],
                            "--target", dst["LM_TB_URI"]], capture_output=True, text=True)
        print(r.stdout.strip())
        if r.returncode != 0:
            sys.exit("FAIL: the target differs from the source")
        print("PASS")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        for s in (src, dst):
            subprocess.run([os.path.join(TOP, "scripts", "testbed"), "stop", s["LM_TB_DIR"]], capture_output=True)
        subprocess.run(["rm", "-rf", "--", d])


if __name__ == "__main__":
    main()
