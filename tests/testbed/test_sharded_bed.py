"""The sharded test bed itself (`scripts/testbed start sharded`), through pymongo: the router
stand-in as a mongos (hello, listShards, the balancer and its fault hooks, shardCollection,
split and moves changing config.chunks, its errors), the client-side router's placement,
the sharded checker against a planted difference and a faithful copy, a lost shard coming
back, and stop leaving no process. Run by ctest (label integration) with the venv's python.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(TOP, "scripts")
TESTBED = os.path.join(SCRIPTS, "testbed")
PYTHON = sys.executable
sys.path.insert(0, SCRIPTS)

from bson import MaxKey, MinKey  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError  # noqa: E402

import lm_sharded  # noqa: E402


def start_bed(shards, prefix):
    r = subprocess.run([TESTBED, "start", "sharded", "--shards", str(shards), "--prefix", prefix,
                        "--owner-pid", str(os.getpid()), "--max-seconds", "600"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"testbed start sharded failed: {r.stderr}")
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def stop_bed(bed):
    subprocess.run([TESTBED, "stop", bed["LM_TB_DIR"]], capture_output=True, timeout=60)


def bed_pids(bed):
    with open(os.path.join(bed["LM_TB_DIR"], "testbed.json")) as f:
        st = json.load(f)
    return [m["pid"] for m in st["shards"] + [st["config"], st["router"]]] + [st["watchdog_pid"]]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def fault(bed, *args):
    r = subprocess.run([TESTBED, "fault", bed["LM_TB_DIR"], *map(str, args)], capture_output=True, text=True,
                       timeout=60)
    return r


def run(script, *args):
    return subprocess.run([PYTHON, os.path.join(SCRIPTS, script), *args], capture_output=True, text=True,
                          timeout=300)


class ShardedBed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bed = start_bed(3, "src")
        cls.mongos = MongoClient(cls.bed["LM_TB_URI"], serverSelectionTimeoutMS=10000)

    @classmethod
    def tearDownClass(cls):
        cls.mongos.close()
        pids = bed_pids(cls.bed)
        stop_bed(cls.bed)
        assert not any(alive(p) for p in pids), "a process of the bed survived stop"

    def admin(self, *args, **kw):
        return self.mongos.admin.command(*args, **kw)

    def code_of(self, fn):
        with self.assertRaises(OperationFailure) as cm:
            fn()
        return cm.exception.code, cm.exception.details.get("codeName"), str(cm.exception)

    def test_hello_says_mongos(self):
        h = self.admin("hello")
        self.assertEqual(h["msg"], "isdbgrid")
        self.assertTrue(h["isWritablePrimary"])
        self.assertEqual(h["maxWireVersion"], 21)
        self.assertNotIn("setName", h)
        self.assertTrue(self.admin("isMaster", helloOk=True)["helloOk"])
        self.assertEqual(self.mongos.topology_description.topology_type_name, "Sharded")
        types = {s.server_type_name for s in self.mongos.topology_description.server_descriptions().values()}
        self.assertEqual(types, {"Mongos"})
        self.assertEqual(self.admin("ping")["ok"], 1.0)
        self.assertEqual(self.admin("buildInfo")["versionArray"][:2], [7, 0])
        self.assertEqual(self.admin("getParameter", 1, featureCompatibilityVersion=1)
                         ["featureCompatibilityVersion"]["version"], "7.0")

    def test_list_shards_names_every_shard_and_its_host(self):
        shards = self.admin("listShards")["shards"]
        self.assertEqual(len(shards), 3)
        for i, s in enumerate(shards):
            name = self.bed[f"LM_TB_SHARD{i}_NAME"]
            self.assertEqual(name, f"src-shard{i}")
            port = self.bed[f"LM_TB_SHARD{i}_URI"].split(":")[2].split("/")[0]
            self.assertEqual(s["_id"], name)
            self.assertEqual(s["host"], f"{name}/127.0.0.1:{port}")
            self.assertEqual(s["state"], 1)
            # the host really is that replica set
            c = MongoClient(self.bed[f"LM_TB_SHARD{i}_URI"])
            self.assertEqual(c.admin.command("hello")["setName"], name)
            c.close()
        cfg = MongoClient(self.bed["LM_TB_CONFIG_URI"])
        self.assertEqual(cfg.admin.command("hello")["setName"], "csrs")
        self.assertEqual(cfg.config.version.count_documents({"_id": 1}), 1)
        cfg.close()

    def test_balancer_stop_start_status(self):
        self.admin("balancerStop")
        self.assertEqual(self.admin("balancerStatus")["mode"], "off")
        self.assertTrue(self.mongos.config.settings.find_one({"_id": "balancer"})["stopped"])
        self.admin("balancerStart")
        st = self.admin("balancerStatus")
        self.assertEqual((st["mode"], st["inBalancerRound"]), ("full", False))
        self.assertFalse(self.mongos.config.settings.find_one({"_id": "balancer"})["stopped"])

    def test_balancer_stop_waits_for_a_round_in_progress(self):
        rounds = self.admin("balancerStatus")["numBalancerRounds"]
        self.assertEqual(fault(self.bed, "balancer-round", 2).returncode, 0)
        st = self.admin("balancerStatus")
        self.assertTrue(st["inBalancerRound"])
        self.assertEqual(st["numBalancerRounds"], rounds + 1)
        seen = []
        t = threading.Thread(target=lambda: seen.append(self.admin("balancerStop")))
        t.start()
        time.sleep(0.5)
        self.assertEqual(seen, [], "balancerStop returned during the round")
        self.assertTrue(self.admin("balancerStatus")["inBalancerRound"])
        t.join(30)
        self.assertEqual(seen[0]["ok"], 1.0)
        st = self.admin("balancerStatus")
        self.assertEqual((st["mode"], st["inBalancerRound"]), ("off", False))
        # a round longer than maxTimeMS: the real error shape
        fault(self.bed, "balancer-round", 5)
        code, name, _ = self.code_of(lambda: self.admin("balancerStop", maxTimeMS=300))
        self.assertEqual((code, name), (50, "MaxTimeMSExpired"))
        fault(self.bed, "balancer-round", 0)
        self.admin("balancerStart")

    def test_refused_balancer_start(self):
        self.admin("balancerStop")
        self.assertEqual(fault(self.bed, "refuse-balancer-start", "on").returncode, 0)
        code, name, msg = self.code_of(lambda: self.admin("balancerStart"))
        self.assertEqual((code, name), (117, "ConflictingOperationInProgress"))
        self.assertIn("refuse-balancer-start", msg)
        self.assertEqual(self.admin("balancerStatus")["mode"], "off")
        fault(self.bed, "refuse-balancer-start", "off")
        self.admin("balancerStart")
        self.assertEqual(self.admin("balancerStatus")["mode"], "full")

    def chunk_map(self, ns):
        coll = self.mongos.config.collections.find_one({"_id": ns})
        # batch_size 1: the reads go through getMore, forwarded to the config server
        chunks = list(self.mongos.config.chunks.find({"uuid": coll["uuid"]}, batch_size=1))
        chunks.sort(key=lambda c: lm_sharded.bound_key(list(coll["key"]), c["min"]))
        return [(c["min"], c["max"], c["shard"]) for c in chunks]

    def test_shard_collection_split_and_moves_change_config_chunks(self):
        self.admin("enableSharding", "app", primaryShard="src-shard2")
        self.assertEqual(self.mongos.config.databases.find_one({"_id": "app"})["primary"], "src-shard2")
        r = self.admin("shardCollection", "app.things", key={"k": 1}, unique=True)
        self.assertEqual(r["collectionsharded"], "app.things")
        coll = self.mongos.config.collections.find_one({"_id": "app.things"})
        self.assertEqual((dict(coll["key"]), coll["unique"]), ({"k": 1}, True))
        self.assertEqual(self.chunk_map("app.things"), [({"k": MinKey()}, {"k": MaxKey()}, "src-shard2")])
        # the shard key index exists on the primary shard
        shard2 = MongoClient(self.bed["LM_TB_SHARD2_URI"])
        self.assertIn("k_1", shard2.app.things.index_information())
        self.admin("split", "app.things", middle={"k": 10})
        self.admin("split", "app.things", middle={"k": 20})
        self.admin("moveRange", "app.things", toShard="src-shard0", min={"k": 10}, max={"k": 20})
        self.admin("moveChunk", "app.things", find={"k": 25}, to="src-shard1")
        self.assertEqual(self.chunk_map("app.things"), [
            ({"k": MinKey()}, {"k": 10}, "src-shard2"), ({"k": 10}, {"k": 20}, "src-shard0"),
            ({"k": 20}, {"k": MaxKey()}, "src-shard1")])
        # the recipient got the collection with the donor's indexes
        shard0 = MongoClient(self.bed["LM_TB_SHARD0_URI"])
        self.assertIn("k_1", shard0.app.things.index_information())
        # errors in MongoDB's shapes
        self.assertEqual(self.code_of(lambda: self.admin("shardCollection", "app.h", key={"k": "hashed"}))[:2],
                         (72, "InvalidOptions"))
        self.assertEqual(self.code_of(lambda: self.admin("shardCollection", "app.things", key={"z": 1}))[:2],
                         (23, "AlreadyInitialized"))
        self.assertEqual(self.code_of(lambda: self.admin("split", "app.things", middle={"k": 10}))[:2],
                         (72, "InvalidOptions"))
        self.assertEqual(self.code_of(lambda: self.admin("moveRange", "app.things", toShard="nope",
                                                         min={"k": 10}))[:2], (70, "ShardNotFound"))
        shard0.app.things.insert_one({"_id": 1, "k": 15})
        code, name, msg = self.code_of(lambda: self.admin("moveRange", "app.things", toShard="src-shard1",
                                                          min={"k": 10}))
        self.assertEqual((code, name), (20, "IllegalOperation"))
        self.assertIn("never data", msg)
        self.assertEqual(self.chunk_map("app.things")[1], ({"k": 10}, {"k": 20}, "src-shard0"))
        self.assertEqual(self.code_of(lambda: self.admin("frobnicate"))[:2], (59, "CommandNotFound"))
        self.assertEqual(self.code_of(lambda: self.mongos.app.command("find", "things"))[:2],
                         (20, "IllegalOperation"))
        self.assertEqual(self.code_of(lambda: self.mongos.app.command("listShards"))[:2], (13, "Unauthorized"))
        shard0.close()
        shard2.close()

    def test_list_databases_sums_the_shards(self):
        c = lm_sharded.Cluster(self.bed["LM_TB_CONFIG_URI"])
        c.database("sizes").create_collection("a")
        c.insert_many("sizes.a", [{"_id": i, "pad": "x" * 100} for i in range(20)])
        dbs = {d["name"]: d for d in self.admin("listDatabases")["databases"]}
        primary = c.meta.database("sizes")["primary"]
        self.assertEqual(list(dbs["sizes"]["shards"]), [primary])
        self.assertGreater(dbs["sizes"]["sizeOnDisk"], 0)
        self.assertIn("config", dbs)
        self.assertEqual([d["name"] for d in self.admin("listDatabases", nameOnly=True)["databases"]],
                         sorted(dbs))
        c.close()

    def test_client_side_router_places_documents_by_the_chunk_map(self):
        c = lm_sharded.Cluster(self.bed["LM_TB_CONFIG_URI"])
        self.admin("enableSharding", "place", primaryShard="src-shard1")
        self.admin("shardCollection", "place.byid", key={"_id": 1})
        self.admin("shardCollection", "place.byname", key={"name": 1})
        for p, to in ((100, "src-shard0"), (200, "src-shard2")):
            self.admin("split", "place.byid", middle={"_id": p})
            self.admin("moveChunk", "place.byid", find={"_id": p}, to=to)
        self.admin("split", "place.byname", middle={"name": "m"})
        self.admin("moveRange", "place.byname", toShard="src-shard2", min={"name": "m"})
        c.refresh()
        c.insert_many("place.byid", [{"_id": i} for i in range(0, 300, 7)])
        c.insert_many("place.byname", [{"_id": i, "name": n} for i, n in enumerate(["adam", "lucy", "mia", "zoe"])])
        c.insert_many("place.loose", [{"_id": i} for i in range(5)])
        want = lambda i: "src-shard1" if i < 100 else "src-shard0" if i < 200 else "src-shard2"  # noqa: E731
        got = c.placement("place.byid")
        for shard, ids in got.items():
            self.assertTrue(all(want(i) == shard for i in ids), f"{shard} holds {ids}")
        self.assertEqual(sum(len(v) for v in got.values()), len(range(0, 300, 7)))
        names = {s: sorted(d["name"] for d in c.coll_on(s, "place.byname").find()) for s in c.shard_names}
        self.assertEqual(names, {"src-shard0": [], "src-shard1": ["adam", "lucy"], "src-shard2": ["mia", "zoe"]})
        # unsharded: the database's primary shard only
        self.assertEqual({s: len(v) for s, v in c.placement("place.loose").items()},
                         {"src-shard0": 0, "src-shard1": 5, "src-shard2": 0})
        self.assertEqual(len(c.find_all("place.byid")), len(range(0, 300, 7)))
        # updates and deletes by shard key reach the owning shard
        db = c.database("place")
        db.byid.update_one({"_id": 210}, {"$set": {"seen": True}})
        self.assertTrue(c.coll_on("src-shard2", "place.byid").find_one({"_id": 210})["seen"])
        db.byname.delete_one({"name": "zoe"})
        self.assertIsNone(c.coll_on("src-shard2", "place.byname").find_one({"name": "zoe"}))
        c.close()

    def test_checker_finds_a_planted_difference_and_none_after_a_faithful_copy(self):
        src_cfg = self.bed["LM_TB_CONFIG_URI"]
        r = run("lm_sharded.py", "seed", "--config", src_cfg, "--chunks", "5", "--docs", "300")
        self.assertEqual(r.returncode, 0, r.stderr)
        seeded = json.loads(r.stdout)
        self.assertEqual(len({p for p in seeded["databases"].values()}), 3)  # three different primaries
        self.assertTrue(all(n > 0 for n in seeded["sharded"]["shop.orders"].values()))
        target = start_bed(3, "dst")
        try:
            dst_cfg = target["LM_TB_CONFIG_URI"]
            r = run("lm_check.py", "--sharded", "--source", src_cfg, "--target", dst_cfg, "--json",
                    "--include", "shop.*", "--include", "crm.*", "--include", "logs.*")
            self.assertEqual(r.returncode, 1)
            self.assertGreater(json.loads(r.stdout)["differences"], 0)
            r = run("lm_sharded.py", "copy", "--source", src_cfg, "--target", dst_cfg)
            self.assertEqual(r.returncode, 0, r.stderr)
            check = ["lm_check.py", "--sharded", "--source", src_cfg, "--target", dst_cfg, "--json"]
            r = run(*check)
            rep = json.loads(r.stdout)
            self.assertEqual((r.returncode, rep["differences"]), (0, 0), rep["details"])
            # every document of the source's shards was compared: the seeded ones (orders,
            # customers, catalog, notes, lines) and what other tests of this class wrote
            src = lm_sharded.Cluster(src_cfg)
            seeded = sum(len(ids) for ns in ("shop.orders", "shop.customers", "shop.catalog", "crm.notes",
                                              "logs.lines") for ids in src.placement(ns).values())
            self.assertEqual(seeded, 300 + 150 + 50 + 120 + 80)
            total = sum(c[db][name].count_documents({}) for c in src.clients.values()
                        for db in c.list_database_names() if db not in lm_sharded.INTERNAL_DBS
                        for name in c[db].list_collection_names() if not name.startswith("system."))
            src.close()
            self.assertEqual(rep["documents"], total)
            # a document moved to the wrong shard, a changed field, a different shard key flag
            t0 = MongoClient(target["LM_TB_SHARD0_URI"])
            t1 = MongoClient(target["LM_TB_SHARD1_URI"])
            doc = t0.shop.orders.find_one_and_delete({"_id": 3})
            t1.shop.orders.insert_one(doc)
            t1.crm.notes.update_one({"_id": 7}, {"$set": {"planted": 1}})  # crm's primary is shard 1
            tcfg = MongoClient(dst_cfg)
            tcfg.config.collections.update_one({"_id": "shop.customers"}, {"$set": {"unique": False}})
            tcfg.config.databases.update_one({"_id": "logs"}, {"$set": {"primary": "dst-shard0"}})
            r = run(*check)
            rep = json.loads(r.stdout)
            self.assertEqual(r.returncode, 1)
            details = "\n".join(rep["details"])
            self.assertIn("shard 0 (src-shard0 -> dst-shard0): shop.orders: document _id=3 missing on the target",
                          details)
            self.assertIn("shard 1 (src-shard1 -> dst-shard1): shop.orders: target has 1 extra document(s): _id 3",
                          details)
            self.assertIn("crm.notes: document _id=7 differs in fields +planted", details)
            self.assertIn("shop.customers: shard key unique=False on the target, True on the source", details)
            self.assertIn("database logs: primary shard dst-shard0 on the target, want dst-shard2", details)
            self.assertEqual(rep["differences"], 5, details)
            for c in (t0, t1, tcfg):
                c.close()
        finally:
            pids = bed_pids(target)
            stop_bed(target)
            self.assertFalse(any(alive(p) for p in pids))

    def test_writer_routes_its_load(self):
        cfg = self.bed["LM_TB_CONFIG_URI"]
        r = run("lm_writer.py", "--sharded", "--uri", cfg, "--db", "wload", "--docs", "90", "--ops", "300",
                "--ddl", "--seed", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["ops"], 300)
        c = lm_sharded.Cluster(cfg)
        placed = c.placement("wload.docs")
        self.assertTrue(all(placed[s] for s in c.shard_names), placed)
        # one chunk per shard split at 30 and 60 (90 documents loaded, 3 shards)
        for j, shard in enumerate(c.shard_names):
            for i in placed[shard]:
                self.assertEqual(min(i // 30, 2), j, f"_id {i} on {shard}")
        # the counters collection is unsharded: on the database's primary only
        primary = c.meta.database("wload")["primary"]
        self.assertEqual([s for s, ids in c.placement("wload.counters").items() if ids], [primary])
        c.close()

    def test_lost_shard_comes_back_with_its_data(self):
        uri = self.bed["LM_TB_SHARD2_URI"]
        c = MongoClient(uri)
        c.lose.docs.insert_many([{"_id": i} for i in range(10)])
        c.close()
        r = fault(self.bed, "lose-shard", 2, 4)
        self.assertEqual(r.returncode, 0, r.stderr)
        down = MongoClient(uri, serverSelectionTimeoutMS=300)
        with self.assertRaises(ServerSelectionTimeoutError):
            down.admin.command("ping")
        down.close()
        # a second loss of a lost shard is refused clearly
        r = fault(self.bed, "lose-shard", 2, 1)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("already down", r.stderr)
        back = MongoClient(uri, serverSelectionTimeoutMS=30000)
        self.assertEqual(back.lose.docs.count_documents({}), 10)
        self.assertEqual(back.admin.command("hello")["setName"], "src-shard2")
        back.close()


    def test_capability_table_in_docs(self):
        """The sharded bed's rows in docs/testing.md are what this measures (LM_UPDATE_DOCS=1
        rewrites them after a reviewed change, as test_capabilities does for its table)."""
        rows = []
        h = self.admin("hello")
        rows.append(("`hello` through the router", f"`msg: \"{h['msg']}\"`, maxWireVersion {h['maxWireVersion']}, "
                     f"{'a setName' if 'setName' in h else 'no setName'}"))
        rows.append(("buildInfo / featureCompatibilityVersion through the router",
                     f"{self.admin('buildInfo')['version']} / "
                     f"{self.admin('getParameter', 1, featureCompatibilityVersion=1)['featureCompatibilityVersion']['version']}"))
        sets = []
        oplogs = 0
        for i in range(int(self.bed["LM_TB_SHARDS"])):
            c = MongoClient(self.bed[f"LM_TB_SHARD{i}_URI"])
            sets.append(c.admin.command("hello")["setName"])
            c.capdb.oplogprobe.insert_one({"_id": i})
            oplogs += c.local.oplog.rs.find_one({"ns": "capdb.oplogprobe", "o._id": i}) is not None
            c.close()
        rows.append(("shards (`--shards 3 --prefix src`)", ", ".join(sets) + " (single-node replica sets)"))
        rows.append(("each shard records its writes in `local.oplog.rs`", "yes" if oplogs == len(sets) else f"{oplogs} of {len(sets)}"))
        cfg = MongoClient(self.bed["LM_TB_CONFIG_URI"])
        rows.append(("config server", f"replica set `{cfg.admin.command('hello')['setName']}`, collections "
                     + ", ".join(sorted(n for n in cfg.config.list_collection_names() if not n.startswith("system")
                                        and n in ("shards", "databases", "collections", "chunks", "settings", "version")))))
        cfg.close()
        code, name, _ = self.code_of(lambda: self.mongos.capdb.command("find", "x"))
        rows.append(("documents read or written through the router", f"refused ({name}): use the shards"))
        code, name, _ = self.code_of(lambda: self.admin("shardCollection", "capdb.h", key={"k": "hashed"}))
        rows.append(("hashed shard keys", f"refused ({name})"))
        self.admin("shardCollection", "capdb.r", key={"k": 1})
        self.admin("split", "capdb.r", middle={"k": 0})
        moved = self.admin("moveRange", "capdb.r", toShard="src-shard1", min={"k": 0})["ok"] == 1.0
        c = lm_sharded.Cluster(self.bed["LM_TB_CONFIG_URI"])
        c.insert_many("capdb.r", [{"k": 5}])
        code, name, _ = self.code_of(lambda: self.admin("moveRange", "capdb.r", toShard="src-shard0", min={"k": 0}))
        c.close()
        rows.append(("chunk moves (`moveRange`, `moveChunk`)", ("config.chunks only" if moved else "no")
                     + f"; a range holding documents is refused ({name})"))
        fault(self.bed, "balancer-round", 1)
        in_round = self.admin("balancerStatus")["inBalancerRound"]
        self.admin("balancerStop")
        after = self.admin("balancerStatus")["inBalancerRound"]
        self.admin("balancerStart")
        rows.append(("a balancer round in progress (`fault DIR balancer-round S`)",
                     "balancerStop waits for it" if in_round and not after else "not simulated"))
        table = "| capability | sharded |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
        path = os.path.join(TOP, "docs", "testing.md")
        with open(path) as f:
            doc = f.read()
        begin = "<!-- sharded-capabilities:begin (generated by tests/testbed/test_sharded_bed.py) -->\n"
        end = "<!-- sharded-capabilities:end -->"
        self.assertIn(begin, doc)
        head, rest = doc.split(begin, 1)
        current, tail = rest.split(end, 1)
        if os.environ.get("LM_UPDATE_DOCS") == "1":
            with open(path, "w") as f:
                f.write(head + begin + table + end + tail)
            return
        self.assertEqual(current, table, "docs/testing.md's sharded table differs from what was measured; "
                         "review, then LM_UPDATE_DOCS=1 to rewrite it")


class BadInput(unittest.TestCase):
    def test_bad_arguments_are_named_and_leave_nothing(self):
        tmp = tempfile.gettempdir()
        before = {n for n in os.listdir(tmp) if n.startswith("lm-tb-sharded-")}
        r = subprocess.run([TESTBED, "start", "sharded", "--shards", "0"], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stderr), (1, "testbed: error: --shards 0: choose 1 to 8\n"))
        r = subprocess.run([TESTBED, "start", "sharded", "--prefix", "a/b"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("use letters, digits", r.stderr)
        after = {n for n in os.listdir(tmp) if n.startswith("lm-tb-sharded-")}
        self.assertEqual(after - before, set())

    def test_one_shard_bed_stops_completely(self):
        bed = start_bed(1, "solo")
        pids = bed_pids(bed)
        self.assertTrue(all(alive(p) for p in pids))
        r = fault(bed, "lose-shard", 5, 1)
        self.assertIn("the bed has shards 0 to 0", r.stderr)
        r = fault(bed, "balancer-round", "soon")
        self.assertIn("use refuse-balancer-start on|off", r.stderr)
        # a restore helper still waiting is stopped with the bed
        self.assertEqual(fault(bed, "lose-shard", 0, 60).returncode, 0)
        with open(os.path.join(bed["LM_TB_DIR"], "testbed.json")) as f:
            helpers = json.load(f)["helpers"]
        self.assertEqual(len(helpers), 1)
        stop_bed(bed)
        self.assertFalse(os.path.exists(bed["LM_TB_DIR"]))
        self.assertEqual([p for p in pids + helpers if alive(p)], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
