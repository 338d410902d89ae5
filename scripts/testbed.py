"""livemig test bed: MongoDB-compatible servers on 127.0.0.1, each on a free port in its own
temporary directory, stopped by pid (never by name) and by a watchdog when their owner dies.

    testbed start KIND [--owner-pid PID] [--max-seconds N] [--oplog-retention-seconds N]
                       [--oplog-max-entries N] [--oplog-size-bytes N] [--standalone]
    testbed stop DIR          end exactly the processes this test bed started for DIR
    testbed restart DIR       stop the server and start it again on the same port and data
    testbed start sharded --shards N [--prefix P] [--owner-pid PID] [--max-seconds N] [...]
    testbed fault DIR refuse-balancer-start on|off
    testbed fault DIR balancer-round SECONDS
    testbed fault DIR lose-shard I SECONDS

KIND is one of: secantus, secantus-auth, secantus-tls, ferretdb, sharded.

`sharded` is a sharded cluster built from real servers: N shards, each a single-node
SecantusDB replica set named `shard<i>` (or `<P>-shard<i>`), a SecantusDB config server
(set `csrs`) holding the config.* collections, and a router stand-in (scripts/lm_router.py)
that answers the metadata and admin commands of a mongos. It prints LM_TB_URI (the router),
LM_TB_CONFIG_URI, LM_TB_SHARDS and LM_TB_SHARD<i>_URI / LM_TB_SHARD<i>_NAME. `fault` changes
a running sharded bed (docs/testing.md, "The sharded test bed").

`start` prints KEY=VALUE lines (LM_TB_URI, LM_TB_DIR, LM_TB_PID, LM_TB_KIND, LM_TB_PORT and,
where they apply, LM_TB_CA_FILE, LM_TB_USER, LM_TB_PASSWORD_FILE). Passwords are never
printed: they sit in a 0600 file. The URI carries no credentials.
"""

import argparse
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPS = os.path.join(TOP, ".deps")
SECANTUSD = os.path.join(DEPS, "venv", "bin", "secantusd-py")
FERRETDB = os.path.join(DEPS, "bin", "ferretdb")
PYTHON = os.path.join(DEPS, "venv", "bin", "python")
KINDS = ("secantus", "secantus-auth", "secantus-tls", "ferretdb", "sharded")
MAX_SHARDS = 8
ADMIN_USER = "lmadmin"
READY_SECONDS = 30


class TestbedError(Exception):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def pid_is_ours(pid, tbdir):
    """True when pid is a live process whose command line names our directory, so a pid the
    kernel reused for somebody else's process is never signalled."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return tbdir.encode() in f.read() and pid_alive(pid)
    except OSError:
        return False


def make_certs(d):
    """A throwaway CA and a 127.0.0.1 server certificate signed by it (scripts/mkcerts)."""
    r = subprocess.run([os.path.join(TOP, "scripts", "mkcerts"), d], capture_output=True, text=True)
    if r.returncode != 0:
        raise TestbedError(f"scripts/mkcerts failed: {r.stderr.strip()}")
    return {"ca": os.path.join(d, "ca.pem"), "cert": os.path.join(d, "server.pem"),
            "key": os.path.join(d, "server.key"), "combined": os.path.join(d, "server-combined.pem")}


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def server_argv(st):
    d, port = st["dir"], st["port"]
    if st["kind"] == "ferretdb":
        return [FERRETDB, "--handler=sqlite", f"--sqlite-url=file:{d}/data/", f"--state-dir={d}",
                f"--listen-addr=127.0.0.1:{port}", "--repl-set-name=rs0", "--telemetry=disable",
                "--debug-addr=-", "--log-level=warn", "--log-format=text",
                # capped collections (the oplog) are trimmed only by this timer (default 1m)
                f"--test-capped-cleanup-interval={st['capped_cleanup_seconds']}s",
                "--test-capped-cleanup-percentage=50"]
    if st["kind"] == "router":
        return [PYTHON, os.path.join(TOP, "scripts", "lm_router.py"), "--port", str(port),
                "--config-uri", st["config_uri"], "--state-dir", st["faults_dir"]]
    # a member of a sharded bed carries its own replica-set name (scripts/lm_secantusd.py)
    prog = [PYTHON, os.path.join(TOP, "scripts", "lm_secantusd.py"), "--set-name", st["set_name"]] \
        if st.get("set_name") else [SECANTUSD]
    argv = prog + ["--host", "127.0.0.1", "--port", str(port),
            "--storage-path", os.path.join(d, "data"), "--log-level", "WARNING",
            "--oplog-retention-seconds", str(st["oplog_retention_seconds"]),
            "--oplog-max-entries", str(st["oplog_max_entries"])]
    if st.get("standalone"):
        argv.append("--standalone")
    if st["kind"] == "secantus-auth" and st.get("auth_ready"):
        argv.append("--auth")
    if st["kind"] == "secantus-tls":
        argv += ["--tls-cert-file", st["certs"]["cert"], "--tls-key-file", st["certs"]["key"]]
    return argv


def client_uri(st):
    if st["kind"] == "sharded":
        return f"mongodb://127.0.0.1:{st['port']}/"
    uri = f"mongodb://127.0.0.1:{st['port']}/?directConnection=true"
    if st["kind"] == "secantus-tls":
        uri += "&tls=true"
    return uri


def pymongo_client(st, with_auth=True):
    from pymongo import MongoClient
    kw = {"serverSelectionTimeoutMS": 1000, "connectTimeoutMS": 1000}
    if st["kind"] == "secantus-tls":
        kw["tlsCAFile"] = st["certs"]["ca"]
    if with_auth and st["kind"] == "secantus-auth" and st.get("auth_ready"):
        with open(st["password_file"]) as f:
            kw.update(username=ADMIN_USER, password=f.read().strip(), authSource="admin")
    return MongoClient(client_uri(st), **kw)


def spawn(st):
    log = open(os.path.join(st["dir"], "server.log"), "ab")
    p = subprocess.Popen(server_argv(st), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         cwd=st["dir"], start_new_session=True)
    st["pid"] = p.pid
    if not st.get("member"):  # a sharded bed's member is saved with the bed
        save(st)
    return p


def listening_inodes(port):
    """The inodes of the sockets listening on TCP `port` (any address), from /proc/net."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    # cols: sl local_address rem_address st ... uid timeout inode
                    if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        found.add(cols[9])
        except OSError:
            pass
    return found


def listens_on(pid, port):
    """True when process `pid` itself holds a socket listening on `port`. A ping alone does
    not prove that: when two test beds chose the same free port at once, the one whose
    server lost the bind would otherwise take the other's server for its own, and the two
    tests would share (and one would stop) a single server."""
    inodes = listening_inodes(port)
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def wait_ready(st, proc):
    deadline = time.monotonic() + READY_SECONDS
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestbedError(f"{st['kind']} exited with status {proc.returncode} while starting; "
                               f"see {st['dir']}/server.log")
        if not listens_on(proc.pid, st["port"]):
            last = f"process {proc.pid} is not listening on port {st['port']} yet"
            time.sleep(0.2)
            continue
        try:
            c = pymongo_client(st)
            c.admin.command("ping")
            c.close()
            return
        except Exception as e:  # not answering yet
            last = e
            time.sleep(0.2)
    raise TestbedError(f"{st['kind']} on port {st['port']} not ready after {READY_SECONDS}s: {last}")


def terminate(pid, tbdir, grace=10.0):
    if not pid or not pid_is_ours(pid, tbdir):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return
        except ChildProcessError:
            pass
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def state_path(d):
    return os.path.join(d, "testbed.json")


def save(st):
    tmp = state_path(st["dir"]) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.replace(tmp, state_path(st["dir"]))


def load(d):
    d = os.path.abspath(d)
    try:
        with open(state_path(d)) as f:
            return json.load(f)
    except FileNotFoundError:
        raise TestbedError(f"{d} is not a test-bed directory (no testbed.json)")


def start_process(st):
    """Start the server on st['port'], retrying on a fresh port when the port was taken
    between choosing it and binding it (a race no free-port scheme avoids)."""
    for attempt in range(3):
        proc = spawn(st)
        try:
            wait_ready(st, proc)
            return proc
        except TestbedError:
            terminate(proc.pid, st["dir"], grace=3)
            with open(os.path.join(st["dir"], "server.log"), "rb") as f:
                in_use = b"in use" in f.read()
            if not in_use or attempt == 2 or st.get("port_fixed"):
                raise
            st["port"] = free_port()


def provision_auth(st, proc):
    """SecantusDB gets users while it runs without --auth; then it restarts with --auth."""
    pw = secrets.token_urlsafe(18)
    c = pymongo_client(st, with_auth=False)
    c.admin.command("createUser", ADMIN_USER, pwd=pw, roles=["root"])
    c.close()
    st["password_file"] = os.path.join(st["dir"], "password")
    write_private(st["password_file"], pw + "\n")
    st["user"] = ADMIN_USER
    terminate(proc.pid, st["dir"])
    st["auth_ready"] = True
    st["port_fixed"] = True
    return start_process(st)


def create_ferret_oplog(st):
    """FerretDB v1 records an oplog only when a capped local.oplog.rs exists."""
    c = pymongo_client(st)
    opts = {"capped": True, "size": st["oplog_size_bytes"]}
    if st["oplog_max_entries"]:
        opts["max"] = st["oplog_max_entries"]
    c.local.create_collection("oplog.rs", **opts)
    c.close()


def spawn_watchdog(st):
    argv = [sys.executable, os.path.abspath(__file__), "_watch", st["dir"]]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(st["dir"], "watchdog.log"), "ab"),
                         start_new_session=True, close_fds=True)
    st["watchdog_pid"] = p.pid
    save(st)


def cmd_start(a):
    if a.kind not in KINDS:
        raise TestbedError(f"unknown kind '{a.kind}': choose one of {', '.join(KINDS)}")
    for binary in (SECANTUSD, FERRETDB):
        if not os.access(binary, os.X_OK):
            raise TestbedError(f"{binary} is missing: run scripts/setup first")
    if a.kind == "sharded":
        if not 1 <= a.shards <= MAX_SHARDS:
            raise TestbedError(f"--shards {a.shards}: choose 1 to {MAX_SHARDS}")
        if a.prefix and not all(ch.isalnum() or ch in "_-" for ch in a.prefix):
            raise TestbedError(f"--prefix {a.prefix!r}: use letters, digits, '-' and '_' only")
    d = tempfile.mkdtemp(prefix=f"lm-tb-{a.kind}-")
    st = {"kind": a.kind, "dir": d, "port": free_port(), "owner_pid": a.owner_pid,
          "deadline": time.time() + a.max_seconds, "standalone": a.standalone,
          "oplog_retention_seconds": a.oplog_retention_seconds,
          "oplog_max_entries": a.oplog_max_entries, "oplog_size_bytes": a.oplog_size_bytes,
          "capped_cleanup_seconds": a.capped_cleanup_seconds}
    try:
        if a.kind == "sharded":
            spawn_watchdog(st)
            start_sharded(a, st)
            out = {"LM_TB_URI": client_uri(st), "LM_TB_DIR": d, "LM_TB_PID": st["pid"],
                   "LM_TB_KIND": a.kind, "LM_TB_PORT": st["port"]}
            out.update(sharded_lines(st))
            for k, v in out.items():
                print(f"{k}={v}")
            sys.stdout.flush()
            return
    except BaseException:
        stop(st)
        raise
    os.makedirs(os.path.join(d, "data"))
    try:
        if a.kind == "secantus-tls":
            st["certs"] = make_certs(os.path.join(d, "tls"))
        spawn_watchdog(st)
        proc = start_process(st)
        if a.kind == "secantus-auth":
            proc = provision_auth(st, proc)
        if a.kind == "ferretdb":
            create_ferret_oplog(st)
        save(st)
    except BaseException:
        stop(st)
        raise
    out = {"LM_TB_URI": client_uri(st), "LM_TB_DIR": d, "LM_TB_PID": st["pid"],
           "LM_TB_KIND": a.kind, "LM_TB_PORT": st["port"]}
    if "certs" in st:
        out["LM_TB_CA_FILE"] = st["certs"]["ca"]
    if "user" in st:
        out["LM_TB_USER"] = st["user"]
        out["LM_TB_PASSWORD_FILE"] = st["password_file"]
    for k, v in out.items():
        print(f"{k}={v}")
    sys.stdout.flush()


# ---- the sharded kind ----------------------------------------------------------------------

def sharded_members(st):
    """Every process-bearing member of a sharded bed: shards, config server, router."""
    return st.get("shards", []) + [st[k] for k in ("config", "router") if k in st]


def member(root, name, kind="secantus", **extra):
    d = os.path.join(root["dir"], name)
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    m = {"kind": kind, "member": True, "name": name, "dir": d, "port": free_port(),
         "oplog_retention_seconds": root["oplog_retention_seconds"],
         "oplog_max_entries": root["oplog_max_entries"]}
    m.update(extra)
    return m


def start_members(members):
    """Start servers side by side (SecantusDB takes ~2 s to come up), then wait for each; one
    that lost its port to a race is started again on a fresh one by start_process."""
    procs = [spawn(m) for m in members]
    for m, proc in zip(members, procs):
        try:
            wait_ready(m, proc)
        except TestbedError:
            terminate(proc.pid, m["dir"], grace=3)
            start_process(m)


def init_config_server(st):
    """The config.* documents of a fresh cluster (shapes of a MongoDB 7.0 config server)."""
    from bson import ObjectId, Timestamp
    c = pymongo_client(st["config"])
    cfg = c.config
    now = Timestamp(int(time.time()), 1)
    cfg.version.insert_one({"_id": 1, "clusterId": ObjectId()})
    cfg.shards.insert_many([{"_id": m["set_name"], "host": f"{m['set_name']}/127.0.0.1:{m['port']}",
                             "state": 1, "topologyTime": now} for m in st["shards"]])
    cfg.settings.insert_one({"_id": "balancer", "mode": "full", "stopped": False})
    cfg.create_collection("databases")
    cfg.create_collection("collections")
    cfg.chunks.create_index([("uuid", 1), ("min", 1)], name="uuid_1_min_1", unique=True)
    c.close()


def start_sharded(a, st):
    d = st["dir"]
    prefix = f"{a.prefix}-" if a.prefix else ""
    st["prefix"] = a.prefix or ""
    st["shards"] = [member(st, f"shard{i}", set_name=f"{prefix}shard{i}") for i in range(a.shards)]
    st["config"] = member(st, "config", set_name="csrs")
    st["router"] = member(st, "router", kind="router", faults_dir=d)
    st["helpers"] = []
    save(st)
    start_members(st["shards"] + [st["config"]])
    save(st)
    init_config_server(st)
    st["router"]["config_uri"] = client_uri(st["config"])
    start_process(st["router"])
    st["port"], st["pid"] = st["router"]["port"], st["router"]["pid"]
    save(st)


def sharded_lines(st):
    out = {"LM_TB_CONFIG_URI": client_uri(st["config"]), "LM_TB_SHARDS": len(st["shards"])}
    for i, m in enumerate(st["shards"]):
        out[f"LM_TB_SHARD{i}_URI"] = client_uri(m)
        out[f"LM_TB_SHARD{i}_NAME"] = m["set_name"]
    return out


class locked:
    """Serialises changes to a bed's testbed.json between `fault` and its restore helper."""

    def __init__(self, d):
        self.path = os.path.join(d, "testbed.lock")

    def __enter__(self):
        self.f = open(self.path, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def faults_path(d):
    return os.path.join(d, "faults.json")


def read_faults(d):
    try:
        with open(faults_path(d)) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def set_fault(d, key, value):
    """faults.json is read by the router on every balancer command."""
    faults = read_faults(d)
    faults[key] = value
    tmp = faults_path(d) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(faults, f)
    os.replace(tmp, faults_path(d))


def cmd_fault(a):
    d = os.path.abspath(a.dir)
    st = load(d)
    if st["kind"] != "sharded":
        raise TestbedError(f"{d} is a {st['kind']} bed: faults exist for the sharded kind only")
    what, args = a.what, a.args
    if what == "refuse-balancer-start" and args in (["on"], ["off"]):
        with locked(d):
            set_fault(d, "refuseBalancerStart", args[0] == "on")
    elif what == "balancer-round" and len(args) == 1 and args[0].replace(".", "", 1).isdigit():
        with locked(d):
            set_fault(d, "balancerRoundUntil", time.time() + float(args[0]))
            set_fault(d, "balancerRounds", read_faults(d).get("balancerRounds", 0) + 1)
    elif what == "lose-shard" and len(args) == 2 and args[0].isdigit() and args[1].isdigit():
        lose_shard(d, int(args[0]), int(args[1]))
    else:
        raise TestbedError(f"fault {what} {' '.join(args)}: use refuse-balancer-start on|off, "
                           "balancer-round SECONDS or lose-shard I SECONDS")


def lose_shard(d, i, seconds):
    with locked(d):
        st = load(d)
        if i >= len(st["shards"]):
            raise TestbedError(f"lose-shard {i}: the bed has shards 0 to {len(st['shards']) - 1}")
        m = st["shards"][i]
        if m.get("lost"):
            raise TestbedError(f"shard {i} is already down (it comes back by itself)")
        terminate(m["pid"], d)
        m["lost"] = True
        argv = [sys.executable, os.path.abspath(__file__), "_restore", d, str(i), str(seconds)]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(d, "restore.log"), "ab"),
                             start_new_session=True, close_fds=True)
        st["helpers"].append(p.pid)
        save(st)
    print(f"LM_TB_SHARD{i}_DOWN_SECONDS={seconds}")


def cmd_restore(a):
    """The helper behind lose-shard: start shard I again on its port and data after S seconds."""
    d = os.path.abspath(a.dir)
    deadline = time.monotonic() + a.seconds
    while time.monotonic() < deadline:
        if not os.path.exists(state_path(d)):
            return  # the bed was stopped meanwhile
        time.sleep(0.1)
    with locked(d):
        st = load(d)
        m = st["shards"][a.index]
        m["port_fixed"] = True
        try:
            start_process(m)
        finally:
            m.pop("lost", None)
            if os.getpid() in st["helpers"]:
                st["helpers"].remove(os.getpid())
            save(st)


def stop_sharded(st):
    """Under the bed's lock, so a restore helper is either still waiting (and is ended) or
    has recorded the pid of the shard it started (which is then ended too)."""
    with locked(st["dir"]):
        try:
            st = load(st["dir"])
        except (TestbedError, ValueError):
            pass  # keep the caller's copy
        for pid in st.get("helpers", []):
            if pid != os.getpid():
                terminate(pid, st["dir"], grace=2)
        terminate_all([m.get("pid") for m in sharded_members(st)], st["dir"])


def terminate_all(pids, tbdir, grace=10.0):
    """SIGTERM to every one of ours at once (servers shut down side by side), SIGKILL to
    those still there after `grace`."""
    ours = [p for p in pids if p and pid_is_ours(p, tbdir)]
    for p in ours:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while ours and time.monotonic() < deadline:
        for p in ours:
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
        ours = [p for p in ours if pid_alive(p)]
        time.sleep(0.05)
    for p in ours:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop(st, keep=False):
    if st["kind"] == "sharded":
        stop_sharded(st)
    else:
        terminate(st.get("pid"), st["dir"])
    wd = st.get("watchdog_pid")
    if wd and wd != os.getpid():
        terminate(wd, st["dir"], grace=2)
    if not keep:
        subprocess.run(["rm", "-rf", "--", st["dir"]], check=False)


def cmd_stop(a):
    try:
        st = load(a.dir)
    except TestbedError:
        if os.path.basename(os.path.abspath(a.dir)).startswith("lm-tb-"):
            return  # already gone: stopping twice is fine
        raise
    stop(st, keep=a.keep)


def cmd_restart(a):
    st = load(a.dir)
    if st["kind"] == "sharded":
        raise TestbedError("restart is for single servers; on a sharded bed use "
                           "`testbed fault DIR lose-shard I SECONDS`")
    terminate(st.get("pid"), st["dir"])
    st["port_fixed"] = True
    start_process(st)
    save(st)
    print(f"LM_TB_PID={st['pid']}")


def cmd_watch(a):
    """The watchdog: stops the server when its owner dies or its time is up."""
    d = os.path.abspath(a.dir)
    while True:
        try:
            st = load(d)
        except (TestbedError, ValueError):
            return
        owner = st.get("owner_pid")
        if (owner and not pid_alive(owner)) or time.time() > st["deadline"]:
            stop(st)
            return
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(prog="testbed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("kind")
    s.add_argument("--owner-pid", type=int, default=0,
                   help="stop the server when this process ends (0: only --max-seconds)")
    s.add_argument("--max-seconds", type=int, default=3600, help="stop the server after this long")
    s.add_argument("--oplog-retention-seconds", type=int, default=3600, help="SecantusDB oplog retention")
    s.add_argument("--oplog-max-entries", type=int, default=0,
                   help="oplog entry cap (SecantusDB: 0 means its default 100000, enforced every 1000 writes; "
                        "FerretDB: the capped collection's max, enforced by the cleanup timer)")
    s.add_argument("--oplog-size-bytes", type=int, default=64 << 20, help="FerretDB capped oplog size")
    s.add_argument("--capped-cleanup-seconds", type=int, default=1,
                   help="FerretDB: how often capped collections (the oplog) are trimmed")
    s.add_argument("--standalone", action="store_true", help="SecantusDB: do not report a replica set")
    s.add_argument("--shards", type=int, default=2, help="sharded: the number of shards (1-8)")
    s.add_argument("--prefix", default="",
                   help="sharded: shard set names become PREFIX-shard<i> (so two beds' names differ)")
    s.set_defaults(fn=cmd_start)
    f = sub.add_parser("fault", help="change a running sharded bed")
    f.add_argument("dir")
    f.add_argument("what", help="refuse-balancer-start | balancer-round | lose-shard")
    f.add_argument("args", nargs="*")
    f.set_defaults(fn=cmd_fault)
    r = sub.add_parser("_restore")
    r.add_argument("dir")
    r.add_argument("index", type=int)
    r.add_argument("seconds", type=float)
    r.set_defaults(fn=cmd_restore)
    for name, fn in (("stop", cmd_stop), ("restart", cmd_restart), ("_watch", cmd_watch)):
        p = sub.add_parser(name)
        p.add_argument("dir")
        if name == "stop":
            p.add_argument("--keep", action="store_true", help="keep the directory")
        p.set_defaults(fn=fn)
    a = ap.parse_args()
    if getattr(a, "oplog_max_entries", None) == 0 and a.cmd == "start" and a.kind != "ferretdb":
        a.oplog_max_entries = 100000
    try:
        a.fn(a)
    except TestbedError as e:
        print(f"testbed: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
