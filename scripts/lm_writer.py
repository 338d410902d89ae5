"""livemig writer: a live application load on a source, for tests, the demo and bench/stream.

    lm_writer.py --uri URI [--db wr] [--seconds N] [--ops N] [--rate OPS_PER_S]
                 [--docs N] [--ddl] [--mix standard|bench|soak] [--stop-file F] [--seed S]
                 [--ride-out] [--user U --password-file F]

Every kind of change livemig must replay: inserts (single and bulk), $set/$unset/$inc,
array updates ($push, $pop, $pull, $addToSet, positional $set, $push with $slice),
$rename, whole-document replacements, deletes, upserts, update_many, and $inc counters in
`<db>.counters` (applied twice they would differ from the source). With --ddl it also
creates and drops collections and indexes while it runs. The bench mix is 50% insert /
40% update / 10% delete over --docs documents in `<db>.bench`. The soak mix (tests/soak) is
the standard mix plus pipeline updates, replacement upserts, findAndModify and
delete_many, with DDL that survives a write whose answer was lost (names never reused).

--ride-out (tests/soak: servers restarted under it) counts any other server error as a
failed operation and goes on instead of ending; the final check compares the source and
the target directly, so the writer keeps no record of what was acknowledged.

With --sharded, --uri is the config server of a sharded test bed (LM_TB_CONFIG_URI) and
every write goes straight to the shard the chunk map names (scripts/lm_sharded.py); unless
--no-load, `<db>.docs` (or `.bench`) is first sharded on {_id: 1} with one chunk per shard
over the loaded _id range. Other collections stay on the database's primary shard.

Stops after --seconds or --ops, when --stop-file exists, or on SIGTERM. Rides out a
restarted server (retries on connection errors). Prints one JSON summary line.
"""

import argparse
import json
import os
import random
import signal
import sys
import time

from pymongo import MongoClient, ReturnDocument, UpdateOne
from pymongo.errors import (AutoReconnect, BulkWriteError, ConnectionFailure, DuplicateKeyError,
                            OperationFailure, PyMongoError)

stop = False


def on_term(*_):
    global stop
    stop = True


def standard_op(db, rng, state, ddl):
    docs, counters = db.docs, db.counters
    n = state["next_id"]
    k = rng.randrange(max(n, 1))
    r = rng.random()
    if r < 0.16:
        docs.insert_one({"_id": n, "n": 0, "tags": ["a"], "sub": {"x": n, "y": "s" * rng.randrange(40)},
                         "arr": [1, 2, 3, 4]})
        state["next_id"] = n + 1
    elif r < 0.20:
        docs.insert_many([{"_id": n + i, "n": i, "arr": [i]} for i in range(5)])
        state["next_id"] = n + 5
    elif r < 0.30:
        docs.update_one({"_id": k}, {"$set": {"sub.y": "v%d" % rng.randrange(1000), "f%d" % rng.randrange(5): k}})
    elif r < 0.34:
        docs.update_one({"_id": k}, {"$unset": {"sub.x": "", "f1": ""}})
    elif r < 0.42:
        docs.update_one({"_id": k}, {"$inc": {"n": 1}})
    elif r < 0.47:
        docs.update_one({"_id": k}, {"$push": {"arr": rng.randrange(100)}})
    elif r < 0.50:
        docs.update_one({"_id": k}, {"$pop": {"arr": 1}})
    elif r < 0.52:
        docs.update_one({"_id": k}, {"$pull": {"arr": {"$lt": 3}}})
    elif r < 0.54:
        docs.update_one({"_id": k}, {"$addToSet": {"tags": "t%d" % rng.randrange(4)}})
    elif r < 0.56:
        docs.update_one({"_id": k, "arr.0": {"$exists": True}}, {"$set": {"arr.0": -1}})
    elif r < 0.58:
        docs.update_one({"_id": k}, {"$push": {"arr": {"$each": [7, 8, 9], "$slice": -3}}})
    elif r < 0.60:
        docs.update_one({"_id": k}, {"$rename": {"f2": "g2"}})
    elif r < 0.66:
        docs.replace_one({"_id": k}, {"replaced": True, "at": rng.randrange(10**6), "arr": [k]})
    elif r < 0.74:
        docs.delete_one({"_id": k})
    elif r < 0.80:
        docs.update_one({"_id": n + rng.randrange(1, 50)}, {"$set": {"upserted": True}, "$inc": {"n": 1}},
                        upsert=True)
    elif r < 0.82:
        docs.update_many({"_id": {"$gte": k, "$lt": k + 5}}, {"$inc": {"many": 1}})
    else:
        counters.update_one({"_id": rng.randrange(10)}, {"$inc": {"c": 1}}, upsert=True)
    if ddl and rng.random() < 0.01:
        ddl_op(db, rng, state)


def ddl_op(db, rng, state):
    r = rng.random()
    i = state.setdefault("ddl", 0)
    if r < 0.4:
        name = "ddl_%d" % i
        db.create_collection(name)
        db[name].insert_many([{"_id": j, "v": j} for j in range(3)])
        db[name].create_index("v", name="v_1")
        state["ddl"] = i + 1
    elif r < 0.6 and i > 1:
        db["ddl_%d" % rng.randrange(i - 1)].drop()
    elif r < 0.8:
        db.docs.create_index([("sub.y", 1)], name="sub_y")
    else:
        try:
            db.docs.drop_index("sub_y")
        except OperationFailure:
            pass


def soak_op(db, rng, state):
    """The standard mix, one time in four one of the forms it lacks, and DDL."""
    docs = db.docs
    n = state["next_id"]
    k = rng.randrange(max(n, 1))
    r = rng.random()
    if r < 0.75:
        standard_op(db, rng, state, False)
    elif r < 0.82:  # pipeline update: computed fields, $unset stage, array concatenation
        docs.update_one({"_id": k}, [{"$set": {"p": {"$add": [{"$ifNull": ["$p", 0]}, 1]},
                                              "arr": {"$concatArrays": [{"$ifNull": ["$arr", []]}, [k % 7]]}}},
                                     {"$unset": "f3"}])
    elif r < 0.86:  # replacement upsert of an id that may not exist
        # (with n and upserted: SecantusDB 0.7 logs an update that adds fields through two
        # operators, the standard mix's upsert {$set: upserted, $inc: n}, with the fields in
        # another order than the document has them: docs/testing.md, "The chaos soak")
        docs.replace_one({"_id": n + rng.randrange(1, 30)},
                         {"ru": True, "v": rng.randrange(1000), "n": 0, "upserted": False}, upsert=True)
    elif r < 0.90:  # findAndModify with $inc and $rename
        docs.find_one_and_update({"_id": k}, {"$inc": {"fam": 1}, "$rename": {"g2": "h2"}},
                                 return_document=ReturnDocument.AFTER)
    elif r < 0.93:
        docs.find_one_and_replace({"_id": k}, {"far": rng.randrange(1000)})
    elif r < 0.95:
        docs.find_one_and_delete({"_id": k})
    elif r < 0.97:
        docs.delete_many({"_id": {"$gte": k, "$lt": k + 3}})
    else:
        docs.update_many({"_id": {"$gte": k, "$lt": k + 10}}, {"$set": {"many_set": rng.randrange(100)},
                                                               "$unset": {"tags": ""}})
    if rng.random() < 0.015:
        soak_ddl(db, rng, state)


def soak_ddl(db, rng, state):
    """create/drop collection, create/drop index; a name is used once even when the server's
    answer was lost (a create that happened is not retried under the same name)."""
    i = state.setdefault("ddl", 0)
    r = rng.random()
    if r < 0.35:
        state["ddl"] = i + 1
        name = "ddl_%d" % i
        db.create_collection(name)
        db[name].insert_many([{"_id": j, "v": j} for j in range(3)])
        db[name].create_index("v", name="v_1")
    elif r < 0.55 and i > 1:
        db["ddl_%d" % rng.randrange(i - 1)].drop()
    elif r < 0.70 and i > 0:
        db["ddl_%d" % rng.randrange(i)].create_index([("w", -1)], name="w_-1")
    elif r < 0.80 and i > 0:
        try:
            db["ddl_%d" % rng.randrange(i)].drop_index("w_-1")
        except OperationFailure:
            pass
    elif r < 0.90:
        db.docs.create_index([("sub.y", 1)], name="sub_y")
    else:
        try:
            db.docs.drop_index("sub_y")
        except OperationFailure:
            pass


def bench_op(db, rng, state, docs):
    coll = db.bench
    r = rng.random()
    if r < 0.5:
        coll.insert_one({"_id": state["next_id"], "v": 0, "pad": "p" * 100})
        state["next_id"] += 1
    elif r < 0.9:
        coll.update_one({"_id": rng.randrange(state["next_id"])}, {"$set": {"v": rng.randrange(10**6)}})
    else:
        coll.delete_one({"_id": rng.randrange(state["next_id"])})


def sharded_db(a):
    """The writer's database on a sharded test bed, its main collection sharded on _id."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import lm_sharded
    cluster = lm_sharded.Cluster(a.uri)
    db = cluster.database(a.db)
    ns = f"{a.db}.{'bench' if a.mix == 'bench' else 'docs'}"
    if not a.no_load and cluster.meta.collection(ns) is None:
        cluster.meta.shard_collection(ns, {"_id": 1})
        n = len(cluster.shard_names)
        lm_sharded.spread_chunks(cluster.meta, ns, [{"_id": a.docs * j // n} for j in range(1, n)],
                                 cluster.shard_names)
    return db


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--user", help="SCRAM user (authSource admin); the password from --password-file")
    ap.add_argument("--password-file")
    ap.add_argument("--db", default="wr")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--ops", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0, help="operations per second, 0: as fast as it can")
    ap.add_argument("--docs", type=int, default=200, help="documents loaded before the load starts")
    ap.add_argument("--ddl", action="store_true")
    ap.add_argument("--mix", choices=("standard", "bench", "soak"), default="standard")
    ap.add_argument("--stop-file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-load", action="store_true", help="the documents are already there")
    ap.add_argument("--sharded", action="store_true",
                    help="--uri is a sharded test bed's config server: route writes to the shards")
    ap.add_argument("--ride-out", action="store_true",
                    help="count other server errors as failed operations and go on")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    rng = random.Random(a.seed)
    if a.sharded:
        db = sharded_db(a)
    else:
        auth = {}
        if a.user:
            with open(a.password_file) as f:
                auth = {"username": a.user, "password": f.read().strip(), "authSource": "admin"}
        client = MongoClient(a.uri, directConnection=True, serverSelectionTimeoutMS=30000, **auth)
        db = client[a.db]
    state = {"next_id": a.docs}
    if not a.no_load:
        coll = db.bench if a.mix == "bench" else db.docs
        for start in range(0, a.docs, 1000):
            coll.insert_many([{"_id": i, "n": 0, "arr": [1, 2], "pad": "p" * 100}
                              for i in range(start, min(start + 1000, a.docs))])
    if a.mix == "bench":
        state["next_id"] = db.bench.find_one(sort=[("_id", -1)])["_id"] + 1 if a.no_load else a.docs
    t0 = time.monotonic()
    done = errors = retries = failed = 0
    while not stop:
        now = time.monotonic()
        if now - t0 >= a.seconds or (a.ops and done >= a.ops):
            break
        if a.stop_file and os.path.exists(a.stop_file):
            break
        if a.rate > 0:
            due = t0 + done / a.rate
            if due > now:
                time.sleep(min(due - now, 0.05))
                continue
        try:
            if a.mix == "bench":
                bench_op(db, rng, state, a.docs)
            elif a.mix == "soak":
                soak_op(db, rng, state)
            else:
                standard_op(db, rng, state, a.ddl)
            done += 1
        except (DuplicateKeyError, BulkWriteError):
            done += 1
            errors += 1
        except (AutoReconnect, ConnectionFailure):
            retries += 1
            time.sleep(0.2)
        except PyMongoError as e:
            if not a.ride_out:
                raise
            failed += 1
            print("writer: %s: %s" % (type(e).__name__, str(e)[:200]), file=sys.stderr)
            time.sleep(0.2)
    print(json.dumps({"ops": done, "duplicateKeys": errors, "reconnects": retries, "failed": failed,
                      "seconds": round(time.monotonic() - t0, 2)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
