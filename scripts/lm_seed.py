"""livemig test data: loads a dataset into a server with pymongo.

    lm_seed.py --uri URI full [--server secantus|ferretdb]
        several databases; collections with options (capped, validator, collation,
        timeseries, clusteredIndex, changeStreamPreAndPostImages) where the server has them;
        views; every index kind the server builds; one document per BSON type the server
        stores; unicode keys, nested arrays, Int32 vs Int64; one document near 16 MB.
    lm_seed.py --uri URI bulk --docs N [--collections C] [--db D] [--doc-bytes B]
        N documents of about B bytes spread over C collections (for resume tests and bench).

Prints one JSON line: what was created and what the server refused (so tests know what
to expect).
"""

import argparse
import datetime
import json
import uuid

from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from pymongo import MongoClient
from pymongo.errors import OperationFailure


def every_type_docs():
    now = datetime.datetime(2026, 11, 21, 12, 0, 0, 123000)
    return [
        {"_id": 1, "kind": "double", "v": 3.141592653589793},
        {"_id": 2, "kind": "string", "v": "caf\u00e9 \u2713 \U0001F600"},
        {"_id": 3, "kind": "document", "v": {"z": 1, "a": {"deep": [1, {"x": [2, [3, [4]]]}]}}},
        {"_id": 4, "kind": "array", "v": [1, "two", [3, [4, [5]]], {"six": 6}]},
        {"_id": 5, "kind": "binary generic", "v": Binary(b"\x00\x01\x02\xff", 0)},
        {"_id": 6, "kind": "binary uuid", "v": Binary(uuid.UUID("12345678-1234-5678-1234-567812345678").bytes, 4)},
        {"_id": 7, "kind": "binary md5", "v": Binary(b"0123456789abcdef", 5)},
        {"_id": 8, "kind": "binary user", "v": Binary(b"custom", 0x80)},
        {"_id": 9, "kind": "objectid", "v": ObjectId("6b0200332a54e48185563f7a")},
        {"_id": 10, "kind": "bool", "v": True},
        {"_id": 11, "kind": "date", "v": now},
        {"_id": 12, "kind": "null", "v": None},
        {"_id": 13, "kind": "regex", "v": Regex("^a.*b$", "imsx")},
        {"_id": 14, "kind": "javascript", "v": Code("function() { return 1; }")},
        {"_id": 15, "kind": "int32", "v": -2147483647},
        {"_id": 16, "kind": "timestamp", "v": Timestamp(1795293239, 7)},
        {"_id": 17, "kind": "int64", "v": Int64(9007199254740993)},
        {"_id": 18, "kind": "int64 small", "v": Int64(5)},
        {"_id": 19, "kind": "decimal128", "v": Decimal128("1234567890.123456789012345678901234")},
        {"_id": 20, "kind": "minkey", "v": MinKey()},
        {"_id": 21, "kind": "maxkey", "v": MaxKey()},
        {"_id": 22, "kind": "unicode keys", "\u00e9t\u00e9": 1, "\u65e5\u672c": {"\u0434\u0430": [1, 2]}},
        {"_id": 23, "kind": "javascript with scope", "v": Code("x + 1", {"x": 1})},
        {"_id": Int64(24), "kind": "int64 _id"},
        {"_id": "s25", "kind": "string _id"},
        {"_id": ObjectId("6b0200332a54e48185563f7b"), "kind": "objectid _id"},
        {"_id": {"compound": 1, "id": 27}, "kind": "document _id"},
        {"_id": 28.5, "kind": "double _id"},
    ]


def try_(report, what, fn):
    try:
        fn()
        report["created"].append(what)
    except OperationFailure as e:
        report["refused"].append(f"{what}: {e.code}")


def seed_full(c, server):
    r = {"created": [], "refused": [], "documents": 0}
    shop, crm, an = c.shop, c.crm, c.analytics
    # plain collections with data
    shop.orders.insert_many([{"_id": i, "cust": f"c{i % 97}", "total": Int64(i * 3), "tags": ["a", "b"][: i % 3],
                              "loc": {"type": "Point", "coordinates": [i % 180 - 90.0, i % 90 - 45.0]},
                              "txt": f"order number {i}", "ts": datetime.datetime(2026, 1, 1) + datetime.timedelta(minutes=i)}
                             for i in range(3000)])
    r["documents"] += 3000
    crm.leads.insert_many([{"name": f"lead {i}", "score": i % 10} for i in range(500)])
    r["documents"] += 500
    # every BSON type the server stores
    for d in every_type_docs():
        try:
            an.types.insert_one(d)
            r["documents"] += 1
        except Exception as e:  # noqa: BLE001 - the server refused this type
            r["refused"].append(f"type {d['kind']}: {type(e).__name__}")
    # a document near 16 MB
    try:
        an.big.insert_one({"_id": "big", "blob": Binary(b"x" * (16 * 1024 * 1024 - 1024)), "n": 1})
        r["documents"] += 1
        r["created"].append("document near 16 MB")
    except Exception as e:  # noqa: BLE001
        r["refused"].append(f"document near 16 MB: {type(e).__name__}")
    # collections with options
    try_(r, "capped", lambda: crm.create_collection("events", capped=True, size=1 << 20, max=1000))
    if "capped" in r["created"]:
        crm.events.insert_many([{"i": i} for i in range(50)])
        r["documents"] += 50
    try_(r, "validator", lambda: crm.create_collection(
        "contacts", validator={"$jsonSchema": {"required": ["email"]}}, validationLevel="moderate",
        validationAction="warn"))
    if "validator" in r["created"]:
        crm.contacts.insert_many([{"email": f"u{i}@x"} for i in range(20)])
        r["documents"] += 20
    try_(r, "collation", lambda: crm.create_collection("names", collation={"locale": "fr", "strength": 2}))
    if "collation" in r["created"]:
        crm.names.insert_many([{"n": n} for n in ("\u00e9t\u00e9", "ete", "Ete")])
        r["documents"] += 3
    try_(r, "timeseries", lambda: an.create_collection("metrics", timeseries={"timeField": "t", "metaField": "m"}))
    if "timeseries" in r["created"]:
        an.metrics.insert_many([{"t": datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=i), "m": {"host": f"h{i % 3}"},
                                 "cpu": i % 100} for i in range(100)])
        r["documents"] += 100
    try_(r, "clusteredIndex", lambda: an.create_collection(
        "clustered", clusteredIndex={"key": {"_id": 1}, "unique": True}))
    if "clusteredIndex" in r["created"]:
        an.clustered.insert_many([{"_id": i} for i in range(10)])
        r["documents"] += 10
    try_(r, "changeStreamPreAndPostImages", lambda: an.create_collection(
        "images", changeStreamPreAndPostImages={"enabled": True}))
    # views
    try_(r, "view", lambda: shop.command("create", "big_orders", viewOn="orders",
                                         pipeline=[{"$match": {"total": {"$gt": 3000}}}, {"$project": {"cust": 1}}]))
    # every index kind
    kinds = [
        ("unique", [("cust", 1), ("_id", -1)], {"unique": True, "name": "cust_id_unique"}),
        ("sparse", [("maybe", 1)], {"sparse": True}),
        ("partial", [("total", 1)], {"partialFilterExpression": {"total": {"$gt": 100}}}),
        ("TTL", [("ts", 1)], {"expireAfterSeconds": 10 ** 9}),
        ("collation", [("cust", 1)], {"collation": {"locale": "fr", "strength": 2}, "name": "cust_fr"}),
        ("hidden", [("tags", 1)], {"hidden": True}),
        ("compound", [("cust", 1), ("total", -1)], {}),
        ("text", [("txt", "text")], {}),
        ("2dsphere", [("loc", "2dsphere")], {}),
        ("hashed", [("cust", "hashed")], {}),
        ("wildcard", [("$**", 1)], {"name": "all_fields"}),
    ]
    for name, keys, opts in kinds:
        try_(r, f"index {name}", lambda k=keys, o=opts: shop.orders.create_index(k, **o))
    return r


def seed_bulk(c, a):
    r = {"created": [], "refused": [], "documents": 0}
    pad = "x" * max(0, a.doc_bytes - 60)
    sizes = [a.docs // a.collections] * a.collections
    sizes[-1] += a.docs % a.collections
    if a.skew and a.collections > 1:  # the first collection holds `skew` of the documents
        sizes = [int(a.docs * a.skew)] + [0] * (a.collections - 1)
        rest = a.docs - sizes[0]
        for i in range(1, a.collections):
            sizes[i] = rest // (a.collections - 1) + (rest % (a.collections - 1) if i == a.collections - 1 else 0)
    for ci in range(a.collections):
        coll = c[a.db][f"c{ci:03d}"]
        n = sizes[ci]
        for start in range(0, n, 5000):
            coll.insert_many([{"_id": start + i, "n": Int64(start + i), "pad": pad} for i in range(min(5000, n - start))],
                             ordered=False)
        if not a.no_index:
            coll.create_index("n")
        r["documents"] += n
        r["created"].append(coll.full_name)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--ca-file")
    sub = ap.add_subparsers(dest="dataset", required=True)
    f = sub.add_parser("full")
    f.add_argument("--server", default="secantus")
    b = sub.add_parser("bulk")
    b.add_argument("--docs", type=int, required=True)
    b.add_argument("--collections", type=int, default=1)
    b.add_argument("--db", default="bulk")
    b.add_argument("--doc-bytes", type=int, default=200)
    b.add_argument("--skew", type=float, default=0, help="share of the documents in the first collection")
    b.add_argument("--no-index", action="store_true", help="no secondary index (benchmarks time the copy only)")
    a = ap.parse_args()
    kw = {"tls": True, "tlsCAFile": a.ca_file} if a.ca_file else {}
    c = MongoClient(a.uri, **kw)
    r = seed_full(c, a.server) if a.dataset == "full" else seed_bulk(c, a)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
