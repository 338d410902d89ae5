"""livemig sharded test bed, client side: the cluster metadata a mongos keeps (used by the
router stand-in, scripts/lm_router.py) and a client-side router for tests, both working on
the real servers of `scripts/testbed start sharded`.

    lm_sharded.py seed --config URI [--chunks N] [--docs N]
        a sharded dataset: shop.orders sharded on {_id: 1}, shop.customers on {email: 1}
        (unique), each in N chunks spread over the shards and filled with documents;
        unsharded collections in databases whose primaries are different shards.
    lm_sharded.py copy --source CONFIG_URI --target CONFIG_URI
        a faithful copy done the way livemig's shard-to-shard design does it: the target's
        databases, shard keys and chunk map made equal to the source's, then source shard i's
        collections, indexes and documents written to target shard i. (A reference for tests.)
    lm_sharded.py describe --config URI
        the cluster's shards, databases, sharded collections and chunk maps as JSON.

Only the config server's URI is needed: shard addresses come from config.shards. Shards are
paired across two clusters by position in natural name order (shard2 before shard10), so
`src-shard0` pairs with `dst-shard0`.

What a real mongos does that this does not: data never moves between shards (moving a chunk
whose range holds documents is refused), hashed shard keys are refused, shard key values are
compared in BSON order by `sort_key` (no collation), and there is no auth or TLS.
"""

import argparse
import bisect
import datetime
import json
import re
import sys
import time
import uuid

from bson import Binary, Code, Decimal128, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

INTERNAL_DBS = {"admin", "local", "config", "__livemig"}


class ShardingError(Exception):
    """A command error in MongoDB's shape: {ok: 0, errmsg, code, codeName}."""

    def __init__(self, code, code_name, message):
        super().__init__(message)
        self.code, self.code_name = code, code_name

    def reply(self):
        return {"ok": 0.0, "errmsg": str(self), "code": self.code, "codeName": self.code_name}


def bad_value(msg):
    return ShardingError(2, "BadValue", msg)


# ---- BSON order for shard key values ------------------------------------------------------

def sort_key(v):
    """A Python key that orders BSON values as MongoDB does (canonical type order first:
    MinKey < null < numbers < strings < objects < arrays < binary < ObjectId < bool < date <
    timestamp < regex < MaxKey; then the value). Strings compare by UTF-8 bytes."""
    if isinstance(v, MinKey):
        return (1,)
    if v is None:
        return (5,)
    if isinstance(v, bool):
        return (40, v)
    if isinstance(v, (int, float)):
        return (10, v)
    if isinstance(v, Decimal128):
        return (10, v.to_decimal())
    if isinstance(v, str):
        return (15, v.encode())
    if isinstance(v, dict):
        return (20, tuple((sort_key(x)[0], k.encode(), sort_key(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return (25, tuple(sort_key(x) for x in v))
    if isinstance(v, Binary):
        return (30, len(v), v.subtype, bytes(v))
    if isinstance(v, bytes):
        return (30, len(v), 0, v)
    if isinstance(v, ObjectId):
        return (35, v.binary)
    if isinstance(v, datetime.datetime):
        return (45, v.replace(tzinfo=None))
    if isinstance(v, Timestamp):
        return (47, v.time, v.inc)
    if isinstance(v, Regex):
        return (50, v.pattern, v.flags)
    if isinstance(v, Code):
        return (60, str(v))
    if isinstance(v, MaxKey):
        return (127,)
    raise bad_value(f"shard key value of type {type(v).__name__} cannot be ordered here")


def get_path(doc, path):
    """The value at a dotted path, None (null, as mongos treats a missing shard key) if absent."""
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def key_of(key_pattern, doc):
    return tuple(sort_key(get_path(doc, f)) for f in key_pattern)


def bound_key(key_pattern, bound):
    return tuple(sort_key(bound.get(f)) for f in key_pattern)


def natural(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


# ---- metadata kept on the config server ---------------------------------------------------

def shard_client_uri(host):
    """config.shards host "set/127.0.0.1:PORT" -> a direct URI for that shard's server."""
    return f"mongodb://{host.split('/', 1)[-1].split(',')[0]}/?directConnection=true"


class Metadata:
    """The sharding metadata in the config server's config.* collections, changed the way
    mongos and the config server change it. Every change is serialised by the caller."""

    def __init__(self, config_uri):
        self.client = MongoClient(config_uri, serverSelectionTimeoutMS=10000)
        self.cfg = self.client.config
        self._shard_clients = {}

    def close(self):
        self.client.close()
        for c in self._shard_clients.values():
            c.close()

    def shards(self):
        return sorted(self.cfg.shards.find({}), key=lambda s: natural(s["_id"]))

    def shard(self, name):
        s = self.cfg.shards.find_one({"_id": name})
        if s is None:
            names = ", ".join(x["_id"] for x in self.shards())
            raise ShardingError(70, "ShardNotFound", f"shard '{name}' not found; the shards are {names}")
        return s

    def shard_client(self, name):
        if name not in self._shard_clients:
            self._shard_clients[name] = MongoClient(shard_client_uri(self.shard(name)["host"]),
                                                    serverSelectionTimeoutMS=10000)
        return self._shard_clients[name]

    def database(self, db):
        return self.cfg.databases.find_one({"_id": db})

    def collection(self, ns):
        return self.cfg.collections.find_one({"_id": ns})

    def chunks(self, coll):
        found = list(self.cfg.chunks.find({"uuid": coll["uuid"]}))
        key = list(coll["key"])
        return sorted(found, key=lambda c: bound_key(key, c["min"]))

    def enable_sharding(self, db, primary=None):
        """Registers a database with its primary shard (the least used one if not named)."""
        if not db or "." in db or db in ("admin", "local", "config"):
            raise ShardingError(73, "InvalidNamespace", f"cannot enable sharding on database '{db}'")
        if primary is not None:
            self.shard(primary)
        have = self.database(db)
        if have:
            if primary and have["primary"] != primary:
                raise ShardingError(48, "NamespaceExists",
                                    f"database {db} already exists with primary shard {have['primary']}; "
                                    "movePrimary is not simulated by the test bed")
            return have
        if primary is None:
            counts = {s["_id"]: 0 for s in self.shards()}
            for d in self.cfg.databases.find({}):
                counts[d["primary"]] = counts.get(d["primary"], 0) + 1
            primary = min(counts, key=lambda n: (counts[n], natural(n)))
        doc = {"_id": db, "primary": primary,
               "version": {"uuid": Binary.from_uuid(uuid.uuid4()), "timestamp": now_ts(), "lastMod": 1}}
        self.cfg.databases.insert_one(doc)
        return doc

    def shard_collection(self, ns, key, unique=False):
        db, _, coll = ns.partition(".")
        if not db or not coll:
            raise ShardingError(73, "InvalidNamespace", f"'{ns}' is not a namespace (db.collection)")
        if not isinstance(key, dict) or not key:
            raise bad_value("the shard key must be a non-empty document, e.g. {_id: 1}")
        for f, v in key.items():
            if v == "hashed":
                raise ShardingError(72, "InvalidOptions",
                                    f"hashed shard key on '{f}': hashed sharding is not simulated by the "
                                    "test bed's router; use a ranged key ({field: 1})")
            if v not in (1, 1.0):
                raise bad_value(f"shard key field '{f}' must be 1 (ranged); got {v!r}")
        have = self.collection(ns)
        if have:
            if dict(have["key"]) == dict(key) and bool(have.get("unique")) == bool(unique):
                return have
            raise ShardingError(23, "AlreadyInitialized",
                                f"sharding already enabled for collection {ns} with options "
                                f"{{key: {dict(have['key'])}, unique: {bool(have.get('unique'))}}}")
        primary = self.enable_sharding(db)["primary"]
        target = self.shard_client(primary)[db]
        if coll not in target.list_collection_names():
            target.create_collection(coll)
        idx = {"key": dict(key), "name": "_".join(f"{f}_1" for f in key)}
        if unique and list(key) != ["_id"]:
            idx["unique"] = True
        if list(key) != ["_id"]:
            target.command("createIndexes", coll, indexes=[idx])
        ts = now_ts()
        doc = {"_id": ns, "lastmodEpoch": ObjectId(), "lastmod": datetime.datetime.now(datetime.timezone.utc),
               "timestamp": ts, "uuid": Binary.from_uuid(uuid.uuid4()), "key": dict(key),
               "unique": bool(unique), "noBalance": False}
        self.cfg.collections.insert_one(doc)
        self.cfg.chunks.insert_one(chunk_doc(doc["uuid"], {f: MinKey() for f in key},
                                             {f: MaxKey() for f in key}, primary, Timestamp(1, 0), ts))
        return doc

    def drop_collection(self, ns):
        """The `drop` command through a mongos: the collection on every shard, then its
        registration and chunks (a collection that does not exist: nothing to do)."""
        db, _, coll = ns.partition(".")
        if not db or not coll:
            raise ShardingError(73, "InvalidNamespace", f"'{ns}' is not a namespace (db.collection)")
        for s in self.shards():
            self.shard_client(s["_id"])[db].drop_collection(coll)
        have = self.collection(ns)
        if have:
            self.cfg.chunks.delete_many({"uuid": have["uuid"]})
            self.cfg.collections.delete_one({"_id": ns})

    def sharded(self, ns):
        coll = self.collection(ns)
        if coll is None:
            raise ShardingError(118, "NamespaceNotSharded", f"{ns} is not sharded: run shardCollection first")
        return coll

    def full_bound(self, coll, bound, what):
        key = list(coll["key"])
        if not isinstance(bound, dict) or sorted(bound) != sorted(key):
            raise bad_value(f"{what} {bound!r} must name exactly the shard key fields {key}")
        return {f: bound[f] for f in key}

    def split(self, ns, middle):
        """Splits the chunk holding `middle` at it (the `split` command with `middle`)."""
        coll = self.sharded(ns)
        key = list(coll["key"])
        middle = self.full_bound(coll, middle, "split point")
        mk = bound_key(key, middle)
        chunks = self.chunks(coll)
        c = chunks[bisect.bisect_right([bound_key(key, x["min"]) for x in chunks], mk) - 1]
        if bound_key(key, c["min"]) == mk:
            raise ShardingError(72, "InvalidOptions", f"cannot split {ns} on {middle}: it is already a "
                                "chunk boundary")
        major, minor = max_version(chunks)
        self.cfg.chunks.update_one({"_id": c["_id"]},
                                   {"$set": {"max": middle, "lastmod": Timestamp(major, minor + 1)}})
        self.cfg.chunks.insert_one(chunk_doc(coll["uuid"], middle, c["max"], c["shard"],
                                             Timestamp(major, minor + 2), c.get("onCurrentShardSince", now_ts())))

    def move_range(self, ns, min_bound, max_bound, to):
        """Gives the chunk [min, max) to shard `to`, metadata only: refused when the donor holds
        documents in the range, since the test bed does not move data."""
        coll = self.sharded(ns)
        self.shard(to)
        key = list(coll["key"])
        min_bound = self.full_bound(coll, min_bound, "min")
        lo = bound_key(key, min_bound)
        chunks = self.chunks(coll)
        match = [c for c in chunks if bound_key(key, c["min"]) == lo]
        if not match:
            raise ShardingError(72, "InvalidOptions",
                                f"no chunk of {ns} starts at {min_bound}: split there first (the test bed "
                                "moves whole chunks only)")
        c = match[0]
        if max_bound is not None and bound_key(key, self.full_bound(coll, max_bound, "max")) != \
                bound_key(key, c["max"]):
            raise ShardingError(72, "InvalidOptions",
                                f"the chunk of {ns} at {min_bound} ends at {dict(c['max'])}, not {max_bound}: "
                                "split there first (the test bed moves whole chunks only)")
        if c["shard"] == to:
            return
        db, _, name = ns.partition(".")
        donor = self.shard_client(c["shard"])[db][name]
        hi = bound_key(key, c["max"])
        for d in donor.find({}, {f: 1 for f in key}):
            if lo <= key_of(key, d) < hi:
                raise ShardingError(20, "IllegalOperation",
                                    f"chunk [{dict(c['min'])}, {dict(c['max'])}) of {ns} holds documents on "
                                    f"{c['shard']}: the test bed's router moves chunk ownership only, never "
                                    "data; move chunks before inserting")
        self.ensure_collection_on(c["shard"], to, db, name)
        major, _ = max_version(chunks)
        ts = now_ts()
        self.cfg.chunks.update_one({"_id": c["_id"]}, {
            "$set": {"shard": to, "lastmod": Timestamp(major + 1, 0), "onCurrentShardSince": ts},
            "$push": {"history": {"$each": [{"validAfter": ts, "shard": to}], "$position": 0}}})

    def ensure_collection_on(self, donor, recipient, db, name):
        """A recipient shard gets the collection with the donor's options and indexes, as a
        migration's first step does."""
        src, dst = self.shard_client(donor)[db], self.shard_client(recipient)[db]
        if name in dst.list_collection_names():
            return
        info = next(src.list_collections(filter={"name": name}), None)
        opts = {k: v for k, v in dict(info.get("options", {})).items() if k != "uuid"} if info else {}
        dst.create_collection(name, **opts)
        specs = [{k: v for k, v in s.items() if k not in ("v", "ns")} for s in src[name].list_indexes()
                 if s["name"] != "_id_"]
        if specs:
            dst.command("createIndexes", name, indexes=specs)


def now_ts():
    return Timestamp(int(time.time()), 1)


def chunk_doc(coll_uuid, lo, hi, shard, version, since):
    return {"_id": ObjectId(), "uuid": coll_uuid, "min": lo, "max": hi, "shard": shard, "lastmod": version,
            "onCurrentShardSince": since, "history": [{"validAfter": since, "shard": shard}]}


def max_version(chunks):
    return max((c["lastmod"].time, c["lastmod"].inc) for c in chunks)


# ---- client-side routing for tests --------------------------------------------------------

class Cluster:
    """A test's view of a sharded bed: routes writes to the shard the chunk map names and
    reads a namespace across every shard. Built from the config server's URI alone."""

    def __init__(self, config_uri, document_class=dict):
        self.meta = Metadata(config_uri)
        self.document_class = document_class
        self.shard_names = [s["_id"] for s in self.meta.shards()]
        self.shard_uris = [shard_client_uri(s["host"]) for s in self.meta.shards()]
        self.clients = {n: MongoClient(u, document_class=document_class, serverSelectionTimeoutMS=30000)
                        for n, u in zip(self.shard_names, self.shard_uris)}
        self._routes = {}

    def close(self):
        self.meta.close()
        for c in self.clients.values():
            c.close()

    def refresh(self):
        self._routes.clear()

    def route(self, ns):
        """(key fields, sorted chunk min keys, chunk shards) or (None, primary shard)."""
        if ns not in self._routes:
            coll = self.meta.collection(ns)
            if coll is None:
                db = ns.partition(".")[0]
                self._routes[ns] = (None, self.meta.enable_sharding(db)["primary"])
            else:
                key = list(coll["key"])
                chunks = self.meta.chunks(coll)
                self._routes[ns] = (key, [bound_key(key, c["min"]) for c in chunks], [c["shard"] for c in chunks])
        return self._routes[ns]

    def shard_for(self, ns, doc):
        r = self.route(ns)
        if r[0] is None:
            return r[1]
        key, mins, owners = r
        return owners[bisect.bisect_right(mins, key_of(key, doc)) - 1]

    def coll_on(self, shard, ns):
        db, _, name = ns.partition(".")
        return self.clients[shard][db][name]

    def targets(self, ns, flt):
        """The one shard a filter with equality on the whole shard key names, else all."""
        r = self.route(ns)
        if r[0] is None:
            return [r[1]]
        if all(f in flt and not (isinstance(flt[f], dict) and any(k.startswith("$") for k in flt[f]))
               for f in r[0]):
            return [self.shard_for(ns, {f: flt[f] for f in r[0]})]
        return list(self.shard_names)

    def insert_many(self, ns, docs):
        by_shard = {}
        for d in docs:
            by_shard.setdefault(self.shard_for(ns, d), []).append(d)
        for shard, part in by_shard.items():
            self.coll_on(shard, ns).insert_many(part, ordered=True)

    def find_all(self, ns, flt=None):
        """Every document of a namespace, read from every shard."""
        out = []
        for shard in self.shard_names:
            out.extend(self.coll_on(shard, ns).find(flt or {}))
        return out

    def placement(self, ns):
        """{shard name: [_id ...]} as the servers hold them."""
        return {s: [d["_id"] for d in self.coll_on(s, ns).find({}, {"_id": 1})] for s in self.shard_names}

    def database(self, db):
        return ShardedDatabase(self, db)


class ShardedDatabase:
    """The part of pymongo's Database the writer uses, routed by the chunk map."""

    def __init__(self, cluster, name):
        self.cluster, self.name = cluster, name
        cluster.meta.enable_sharding(name)

    def __getitem__(self, coll):
        return ShardedCollection(self.cluster, f"{self.name}.{coll}")

    def __getattr__(self, coll):
        if coll.startswith("_"):
            raise AttributeError(coll)
        return self[coll]

    def create_collection(self, coll, **opts):
        ns = f"{self.name}.{coll}"
        primary = self.cluster.route(ns)[1]
        self.cluster.clients[primary][self.name].create_collection(coll, **opts)


class ShardedCollection:
    """insert/update/replace/delete routed by shard key; unsharded: the primary shard."""

    def __init__(self, cluster, ns):
        self.cluster, self.ns = cluster, ns

    def _one(self, flt):
        return [self.cluster.coll_on(s, self.ns) for s in self.cluster.targets(self.ns, flt)]

    def _holders(self):
        db, _, name = self.ns.partition(".")
        return [self.cluster.coll_on(s, self.ns) for s in self.cluster.shard_names
                if name in self.cluster.clients[s][db].list_collection_names()]

    def insert_one(self, doc):
        self.cluster.insert_many(self.ns, [doc])

    def insert_many(self, docs, ordered=True):
        self.cluster.insert_many(self.ns, list(docs))

    def _write_one(self, op, flt, *args, upsert=False):
        targets = self._one(flt)
        if upsert and len(targets) > 1:
            raise bad_value(f"{self.ns}: an upsert must name the whole shard key in its filter")
        result = None
        for c in targets:
            result = getattr(c, op)(flt, *args, upsert=upsert) if op != "delete_one" else c.delete_one(flt)
            n = result.deleted_count if op == "delete_one" else result.matched_count
            if n:
                return result
        return result

    def update_one(self, flt, update, upsert=False):
        return self._write_one("update_one", flt, update, upsert=upsert)

    def replace_one(self, flt, doc, upsert=False):
        r = self.cluster.route(self.ns)
        if r[0] is not None:
            for f in r[0]:  # the shard key is immutable: a replacement keeps it
                if f != "_id" and get_path(doc, f) is None and f in flt:
                    doc = dict(doc, **{f: flt[f]})
        return self._write_one("replace_one", flt, doc, upsert=upsert)

    def delete_one(self, flt):
        return self._write_one("delete_one", flt)

    def update_many(self, flt, update, upsert=False):
        for c in self._one(flt):
            c.update_many(flt, update, upsert=upsert)

    def delete_many(self, flt):
        for c in self._one(flt):
            c.delete_many(flt)

    def find_one(self, flt=None, sort=None):
        docs = [d for c in self._one(flt or {}) for d in c.find(flt or {}, sort=sort, limit=1)]
        if sort and docs:
            f, direction = sort[0]
            docs.sort(key=lambda d: sort_key(get_path(d, f)), reverse=direction < 0)
        return docs[0] if docs else None

    def create_index(self, keys, **kw):
        for c in self._holders() or self._one({}):
            c.create_index(keys, **kw)

    def drop_index(self, name):
        for c in self._holders():
            c.drop_index(name)

    def drop(self):
        if self.cluster.route(self.ns)[0] is not None:
            raise bad_value(f"{self.ns} is sharded: dropping a sharded collection is not simulated")
        for c in self._holders():
            c.drop()


# ---- seed, copy, describe -------------------------------------------------------------------

def spread_chunks(meta, ns, points, shard_names):
    """Splits at `points` (shard key documents, ascending) and gives chunk j to shard j mod N."""
    for p in points:
        meta.split(ns, p)
    coll = meta.collection(ns)
    for j, c in enumerate(meta.chunks(coll)):
        meta.move_range(ns, c["min"], c["max"], shard_names[j % len(shard_names)])


def seed(config_uri, chunks=6, docs=600):
    """A sharded cluster dataset; returns what it made."""
    cl = Cluster(config_uri)
    meta, names = cl.meta, cl.shard_names
    made = {"shards": len(names), "databases": {}, "sharded": {}, "unsharded": []}
    for j, db in enumerate(("shop", "crm", "logs")):
        made["databases"][db] = meta.enable_sharding(db, names[j % len(names)])["primary"]
    meta.shard_collection("shop.orders", {"_id": 1})
    step = max(docs // chunks, 1)
    spread_chunks(meta, "shop.orders", [{"_id": step * j} for j in range(1, chunks)], names)
    meta.shard_collection("shop.customers", {"email": 1}, unique=True)
    letters = "bcdfghjklmnpqrstvwxyz"
    points = sorted({letters[(j * len(letters)) // chunks] for j in range(1, chunks)})
    spread_chunks(meta, "shop.customers", [{"email": p} for p in points], names)
    cl.refresh()
    shop = cl.database("shop")
    shop.orders.create_index([("status", 1), ("total", -1)], name="status_total")
    cl.insert_many("shop.orders", [{"_id": i, "status": ("new", "paid", "sent")[i % 3], "total": i * 1.5,
                                    "lines": [{"sku": f"s{i % 17}", "qty": i % 4 + 1}]} for i in range(docs)])
    cl.insert_many("shop.customers", [{"_id": ObjectId(), "email": f"{letters[i % len(letters)]}{i}@example.com",
                                       "since": datetime.datetime(2026, 1, 1) + datetime.timedelta(hours=i)}
                                      for i in range(docs // 2)])
    cl.database("shop").create_collection("catalog")
    cl.insert_many("shop.catalog", [{"_id": f"sku{i}", "price": i} for i in range(50)])
    cl.database("crm").create_collection("notes")
    cl.database("crm").notes.create_index("who", name="who_1")
    cl.insert_many("crm.notes", [{"_id": i, "who": f"u{i % 9}", "text": "n" * (i % 30)} for i in range(120)])
    cl.insert_many("logs.lines", [{"_id": i, "line": f"line {i}"} for i in range(80)])
    for ns in ("shop.orders", "shop.customers"):
        made["sharded"][ns] = {s: len(ids) for s, ids in cl.placement(ns).items()}
    made["unsharded"] = ["shop.catalog", "crm.notes", "logs.lines"]
    cl.close()
    return made


def paired(src, dst):
    if len(src.shard_names) != len(dst.shard_names):
        raise bad_value(f"the source has {len(src.shard_names)} shards and the target {len(dst.shard_names)}: "
                        "shard-to-shard needs the same count")
    return dict(zip(src.shard_names, dst.shard_names))


def copy_cluster(source_uri, target_uri):
    """Metadata first (databases with paired primaries, shard keys, equal chunk maps), then
    each source shard's collections, indexes and documents onto its paired target shard."""
    src, dst = Cluster(source_uri, RawBSONDocument), Cluster(target_uri, RawBSONDocument)
    pair = paired(src, dst)
    for d in src.meta.cfg.databases.find({}):
        dst.meta.enable_sharding(d["_id"], pair[d["primary"]])
    for coll in src.meta.cfg.collections.find({}):
        ns = coll["_id"]
        dst.meta.shard_collection(ns, dict(coll["key"]), coll.get("unique", False))
        chunks = src.meta.chunks(coll)
        for c in chunks[1:]:
            dst.meta.split(ns, c["min"])
        for c in chunks:
            dst.meta.move_range(ns, c["min"], c["max"], pair[c["shard"]])
    docs = 0
    for s_name, t_name in pair.items():
        s, t = src.clients[s_name], dst.clients[t_name]
        for db in s.list_database_names():
            if db in INTERNAL_DBS:
                continue
            for info in s[db].list_collections():
                name = info["name"]
                if name.startswith("system."):
                    continue
                if name not in t[db].list_collection_names():
                    opts = {k: v for k, v in dict(info.get("options", {})).items() if k != "uuid"}
                    t[db].create_collection(name, **opts)
                if info.get("type") == "view":
                    continue
                specs = [{k: v for k, v in dict(x).items() if k not in ("v", "ns")}
                         for x in s[db][name].list_indexes() if x["name"] != "_id_"]
                if specs:
                    t[db].command("createIndexes", name, indexes=specs)
                batch = list(s[db][name].find({}))
                if batch:
                    t[db][name].insert_many(batch)
                docs += len(batch)
    src.close()
    dst.close()
    return {"documents": docs, "pairs": pair}


def describe(config_uri):
    meta = Metadata(config_uri)
    out = {"shards": [{"name": s["_id"], "host": s["host"]} for s in meta.shards()],
           "databases": {d["_id"]: d["primary"] for d in meta.cfg.databases.find({})},
           "collections": {}}
    for coll in meta.cfg.collections.find({}):
        out["collections"][coll["_id"]] = {
            "key": dict(coll["key"]), "unique": bool(coll.get("unique")),
            "chunks": [[str(dict(c["min"])), str(dict(c["max"])), c["shard"]] for c in meta.chunks(coll)]}
    meta.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--config", required=True, help="the config server's URI (LM_TB_CONFIG_URI)")
    s.add_argument("--chunks", type=int, default=6)
    s.add_argument("--docs", type=int, default=600)
    c = sub.add_parser("copy")
    c.add_argument("--source", required=True, help="the source's config server URI")
    c.add_argument("--target", required=True, help="the target's config server URI")
    d = sub.add_parser("describe")
    d.add_argument("--config", required=True)
    a = ap.parse_args()
    try:
        if a.cmd == "seed":
            if a.chunks < 1 or a.docs < a.chunks:
                raise bad_value("--chunks must be at least 1 and --docs at least --chunks")
            out = seed(a.config, a.chunks, a.docs)
        elif a.cmd == "copy":
            out = copy_cluster(a.source, a.target)
        else:
            out = describe(a.config)
    except ShardingError as e:
        print(f"lm_sharded: {e} ({e.code_name})", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
