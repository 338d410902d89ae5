"""livemig test bed: a router stand-in (the "mongos" of `scripts/testbed start sharded`).

    lm_router.py --port PORT --config-uri URI --state-dir DIR

A small asyncio server speaking MongoDB's wire protocol (OP_MSG, and OP_QUERY for the
drivers' first hello) that answers only what a migration tool sends a mongos: the sharding
and admin commands, backed by the config server's config.* collections (scripts/lm_sharded.py
changes them), and reads of config.* forwarded byte for byte to the config server. Every
document of a test is read and written on the real shard servers, never through here.
Anything else gets {ok: 0, code: 59, codeName: "CommandNotFound"}. Reply shapes follow
MongoDB's reference pages (docs/testing.md lists them). No auth, no TLS.

DIR/faults.json (written by `scripts/testbed fault`) is read on every balancer command:
refuseBalancerStart (bool) and balancerRoundUntil (epoch seconds: a round in progress).
"""

import argparse
import asyncio
import datetime
import json
import logging
import os
import struct
import sys
import threading
import time

import bson
from bson.codec_options import DEFAULT_CODEC_OPTIONS, DatetimeConversion

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lm_sharded  # noqa: E402
from lm_sharded import ShardingError, bad_value  # noqa: E402

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
MAX_MESSAGE = 48_000_000
MAX_WIRE_VERSION = 21  # MongoDB 7.0
VERSION = "7.0.0"
FCV = "7.0"
CODEC = DEFAULT_CODEC_OPTIONS.with_options(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
FORWARDED = {"find", "getMore", "killCursors", "aggregate"}
ADMIN_ONLY = {"listShards", "balancerStart", "balancerStop", "balancerStatus", "enableSharding",
              "shardCollection", "split", "moveChunk", "moveRange", "listDatabases", "getParameter",
              "getShardMap"}
log = logging.getLogger("lm_router")


class Router:
    def __init__(self, config_uri, state_dir):
        host = config_uri.split("//", 1)[1].split("/", 1)[0]
        self.config_host, self.config_port = host.rsplit(":", 1)[0], int(host.rsplit(":", 1)[1])
        self.meta = lm_sharded.Metadata(config_uri)
        self.state_dir = state_dir
        self.lock = threading.Lock()  # one metadata change at a time, as the config server does
        self.connections = 0

    # ---- the wire -----------------------------------------------------------------------

    async def serve(self, reader, writer):
        self.connections += 1
        conn = {"id": self.connections, "upstream": None}
        try:
            while True:
                header = await reader.readexactly(16)
                length, req_id, _, opcode = struct.unpack("<iiii", header)
                if length < 16 or length > MAX_MESSAGE:
                    return
                body = await reader.readexactly(length - 16)
                if opcode == OP_MSG:
                    flags = struct.unpack_from("<I", body)[0]
                    cmd = parse_msg(body, flags)
                    reply = await self.command(cmd, conn)
                    if not flags & 2:  # moreToCome: the client wants no answer
                        writer.write(msg_bytes(reply, req_id))
                elif opcode == OP_QUERY:
                    ns_end = body.index(b"\0", 4)
                    ns = body[4:ns_end].decode()
                    qlen = struct.unpack_from("<i", body, ns_end + 9)[0]
                    cmd = bson.decode(body[ns_end + 9:ns_end + 9 + qlen], CODEC)
                    if "$query" in cmd:
                        cmd = cmd["$query"]
                    cmd.setdefault("$db", ns.split(".", 1)[0])
                    if not ns.endswith(".$cmd"):
                        reply = bson.encode(err(20, "IllegalOperation", "OP_QUERY is only for commands"))
                    else:
                        reply = await self.command(cmd, conn)
                    writer.write(struct.pack("<iiiiiqii", 36 + len(reply), 0, req_id, OP_REPLY, 0, 0, 0, 1) + reply)
                else:
                    return  # OP_COMPRESSED and legacy opcodes: we never offered them
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("connection %d", conn["id"])
        finally:
            if conn["upstream"]:
                conn["upstream"][1].close()
            writer.close()

    async def command(self, cmd, conn):
        """The reply body (BSON bytes) for one command document."""
        if not cmd:
            return bson.encode(err(59, "CommandNotFound", "no such command: ''"))
        name = next(iter(cmd))
        db = cmd.get("$db", "admin")
        try:
            if name in FORWARDED:
                if db != "config":
                    raise ShardingError(20, "IllegalOperation",
                                        f"the test bed's router serves {name} on config.* only; read "
                                        "documents from the shards (LM_TB_SHARD<i>_URI)")
                return await self.forward(cmd, conn)
            if name in ADMIN_ONLY and db != "admin":
                raise ShardingError(13, "Unauthorized", f"{name} may only be run against the admin database.")
            if name in ("hello", "isMaster", "ismaster"):
                reply = hello(cmd, name, conn["id"])
            elif name == "ping":
                reply = {}
            elif name in ("buildInfo", "buildinfo"):
                reply = {"version": VERSION, "gitVersion": "livemig-testbed-router",
                         "versionArray": [7, 0, 0, 0], "bits": 64, "debug": False,
                         "maxBsonObjectSize": 16 * 1024 * 1024, "modules": [], "storageEngines": []}
            elif name == "endSessions":
                reply = {}
            elif name == "balancerStop":
                reply = await self.balancer_stop(cmd)
            else:
                handler = getattr(self, "cmd_" + name, None)
                if handler is None:
                    raise ShardingError(59, "CommandNotFound", f"no such command: '{name}'")
                reply = await asyncio.to_thread(self.locked, handler, cmd)
            reply["ok"] = 1.0
            return bson.encode(reply)
        except ShardingError as e:
            return bson.encode(e.reply())
        except Exception as e:  # a pymongo error from the config server or a shard
            details = getattr(e, "details", None) or {}
            return bson.encode(err(getattr(e, "code", None) or 1, details.get("codeName", "InternalError"),
                                   f"{name}: {e}"))

    def locked(self, fn, cmd):
        with self.lock:
            return fn(cmd)

    async def forward(self, cmd, conn):
        """config.* reads: the same command on the config server over this client's own
        connection there, so cursors and sessions stay the client's; the reply as it came."""
        for k in ("$readPreference", "$clusterTime"):
            cmd.pop(k, None)
        try:
            if conn["upstream"] is None:
                conn["upstream"] = await asyncio.open_connection(self.config_host, self.config_port)
            reader, writer = conn["upstream"]
            writer.write(msg_bytes(bson.encode(cmd, codec_options=CODEC), 0))
            await writer.drain()
            length, _, _, opcode = struct.unpack("<iiii", await reader.readexactly(16))
            body = await reader.readexactly(length - 16)
        except (OSError, asyncio.IncompleteReadError) as e:
            if conn["upstream"]:
                conn["upstream"][1].close()
            conn["upstream"] = None  # the next command connects again
            raise ShardingError(6, "HostUnreachable", f"config server 127.0.0.1:{self.config_port} "
                                f"unreachable: {e}")
        if opcode != OP_MSG:
            raise ShardingError(1, "InternalError", f"config server answered opcode {opcode}")
        return first_section(body, struct.unpack_from("<I", body)[0])

    # ---- the balancer -------------------------------------------------------------------

    def faults(self):
        try:
            with open(os.path.join(self.state_dir, "faults.json")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return {}

    def in_round(self):
        return time.time() < self.faults().get("balancerRoundUntil", 0)

    def set_balancer(self, on):
        self.meta.cfg.settings.update_one({"_id": "balancer"},
                                          {"$set": {"mode": "full" if on else "off", "stopped": not on}},
                                          upsert=True)

    def cmd_balancerStart(self, cmd):
        if self.faults().get("refuseBalancerStart"):
            raise ShardingError(117, "ConflictingOperationInProgress",
                                "balancerStart refused by the test bed (fault refuse-balancer-start is on)")
        self.set_balancer(True)
        return {}

    async def balancer_stop(self, cmd):
        """Turns the balancer off, then waits for a round in progress to end (maxTimeMS,
        default 60 s, as mongos does)."""
        await asyncio.to_thread(self.locked, lambda _: self.set_balancer(False), cmd)
        deadline = time.monotonic() + float(cmd.get("maxTimeMS") or 60000) / 1000
        while self.in_round():
            if time.monotonic() >= deadline:
                raise ShardingError(50, "MaxTimeMSExpired",
                                    "operation exceeded time limit: a balancer round is still in progress")
            await asyncio.sleep(0.05)
        return {}

    def cmd_balancerStatus(self, cmd):
        s = self.meta.cfg.settings.find_one({"_id": "balancer"}) or {}
        return {"mode": s.get("mode", "full"), "inBalancerRound": self.in_round(),
                "numBalancerRounds": bson.Int64(self.faults().get("balancerRounds", 0))}

    # ---- metadata ------------------------------------------------------------------------

    def cmd_getParameter(self, cmd):
        if cmd.get("featureCompatibilityVersion") or cmd["getParameter"] == "*":
            return {"featureCompatibilityVersion": {"version": FCV}}
        raise ShardingError(72, "InvalidOptions", "no option found to get")

    def cmd_listShards(self, cmd):
        return {"shards": [{k: s[k] for k in ("_id", "host", "state", "topologyTime") if k in s}
                           for s in self.meta.shards()]}

    def cmd_getShardMap(self, cmd):
        """Each shard's and the config servers' connection strings ("set/host:port")."""
        cfg = f"{self.meta.client.admin.command('hello')['setName']}/{self.config_host}:{self.config_port}"
        conn = {s["_id"]: s["host"] for s in self.meta.shards()}
        conn["config"] = cfg
        return {"map": dict(conn), "hosts": {h.split("/", 1)[1]: n for n, h in conn.items()},
                "connStrings": {h: n for n, h in conn.items()}}

    def cmd_enableSharding(self, cmd):
        self.meta.enable_sharding(str(cmd["enableSharding"]), cmd.get("primaryShard"))
        return {}

    def cmd_shardCollection(self, cmd):
        ns = str(cmd["shardCollection"])
        for opt in ("numInitialChunks", "presplitHashedZones", "timeseries"):
            if opt in cmd:
                raise ShardingError(72, "InvalidOptions", f"shardCollection option {opt} is not simulated "
                                    "by the test bed's router")
        coll = self.meta.shard_collection(ns, cmd.get("key"), bool(cmd.get("unique", False)))
        return {"collectionsharded": ns, "collectionUUID": coll["uuid"]}

    def cmd_split(self, cmd):
        if "middle" not in cmd:
            raise ShardingError(72, "InvalidOptions", "split: the test bed's router splits at a `middle` "
                                "point only (not `find` or `bounds`)")
        self.meta.split(str(cmd["split"]), cmd["middle"])
        return {}

    def cmd_moveChunk(self, cmd):
        ns, to = str(cmd["moveChunk"]), cmd.get("to")
        if not to:
            raise bad_value("moveChunk needs `to`: the name of the recipient shard")
        coll = self.meta.sharded(ns)
        key = list(coll["key"])
        chunks = self.meta.chunks(coll)
        if "bounds" in cmd and len(cmd["bounds"]) == 2:
            lo, hi = cmd["bounds"]
        elif "find" in cmd:
            k = lm_sharded.key_of(key, cmd["find"])
            c = [c for c in chunks if lm_sharded.bound_key(key, c["min"]) <= k][-1]
            lo, hi = c["min"], c["max"]
        else:
            raise bad_value("moveChunk needs `find` (a shard key value) or `bounds` ([min, max])")
        t0 = time.monotonic()
        self.meta.move_range(ns, lo, hi, to)
        return {"millis": int((time.monotonic() - t0) * 1000)}

    def cmd_moveRange(self, cmd):
        ns, to = str(cmd["moveRange"]), cmd.get("toShard")
        if not to or "min" not in cmd:
            raise bad_value("moveRange needs `toShard` and `min` (the test bed moves whole chunks only)")
        self.meta.move_range(ns, cmd["min"], cmd.get("max"), to)
        return {}

    def cmd_drop(self, cmd):
        """drop through mongos: on every shard, with the collection's registration and chunks."""
        ns = f"{cmd.get('$db', 'test')}.{cmd['drop']}"
        self.meta.drop_collection(ns)
        return {"ns": ns}

    def cmd_listDatabases(self, cmd):
        """Each database with its size summed over the shards and per shard, as mongos lists."""
        sizes = {}
        for s in self.meta.shards():
            for d in self.meta.shard_client(s["_id"]).admin.command("listDatabases")["databases"]:
                if d["name"] in ("admin", "config", "local"):
                    continue
                e = sizes.setdefault(d["name"], {"name": d["name"], "sizeOnDisk": 0, "empty": True, "shards": {}})
                e["sizeOnDisk"] += int(d.get("sizeOnDisk", 0))
                e["empty"] = e["empty"] and bool(d.get("empty", False))
                e["shards"][s["_id"]] = int(d.get("sizeOnDisk", 0))
        for d in self.meta.client.admin.command("listDatabases")["databases"]:
            if d["name"] in ("admin", "config"):
                sizes[d["name"]] = {"name": d["name"], "sizeOnDisk": int(d.get("sizeOnDisk", 0)),
                                    "empty": bool(d.get("empty", False))}
        dbs = [sizes[n] for n in sorted(sizes)]
        if cmd.get("nameOnly"):
            return {"databases": [{"name": d["name"]} for d in dbs]}
        total = sum(d["sizeOnDisk"] for d in dbs)
        return {"databases": dbs, "totalSize": total, "totalSizeMb": total // (1 << 20)}


def err(code, name, msg):
    return {"ok": 0.0, "errmsg": msg, "code": code, "codeName": name}


def hello(cmd, name, conn_id):
    r = {"isWritablePrimary" if name == "hello" else "ismaster": True, "msg": "isdbgrid",
         "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": MAX_MESSAGE,
         "maxWriteBatchSize": 100000, "localTime": datetime.datetime.now(datetime.timezone.utc),
         "logicalSessionTimeoutMinutes": 30, "connectionId": conn_id, "minWireVersion": 0,
         "maxWireVersion": MAX_WIRE_VERSION, "readOnly": False}
    if name != "hello" and cmd.get("helloOk"):
        r["helloOk"] = True
    return r


def parse_msg(body, flags):
    """The command of an OP_MSG: the body section, with document sequences put in as arrays."""
    end = len(body) - (4 if flags & 1 else 0)
    pos, cmd, seqs = 4, None, {}
    while pos < end:
        kind = body[pos]
        pos += 1
        size = struct.unpack_from("<i", body, pos)[0]
        if kind == 0:
            cmd = bson.decode(body[pos:pos + size], CODEC)
        else:
            ident_end = body.index(b"\0", pos + 4)
            ident = body[pos + 4:ident_end].decode()
            seqs[ident] = bson.decode_all(body[ident_end + 1:pos + size], CODEC)
        pos += size
    cmd = cmd or {}
    cmd.update(seqs)
    return cmd


def first_section(body, flags):
    pos = 4
    if body[pos] != 0:
        raise ShardingError(1, "InternalError", "config server reply without a body section")
    size = struct.unpack_from("<i", body, pos + 1)[0]
    return body[pos + 1:pos + 1 + size]


def msg_bytes(doc_bytes, response_to):
    return struct.pack("<iiiiIB", 21 + len(doc_bytes), 0, response_to, OP_MSG, 0, 0) + doc_bytes


async def main_async(a):
    router = Router(a.config_uri, a.state_dir)
    server = await asyncio.start_server(router.serve, "127.0.0.1", a.port)
    log.warning("router stand-in on 127.0.0.1:%d, config server %s", a.port, a.config_uri)
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--config-uri", required=True)
    ap.add_argument("--state-dir", required=True)
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(main_async(a))
    except OSError as e:
        print(f"lm_router: cannot listen on 127.0.0.1:{a.port}: {e} (address already in use?)", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
