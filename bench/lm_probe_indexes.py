"""Index builds on one SecantusDB: all of shop.orders' index specs (scripts/lm_seed.py full,
less text and hashed, which SecantusDB refuses) in one createIndexes, one by one, and one by
one from two connections in parallel, each after a fresh insert of N documents. Prints one
line per round and way (issue 18: docs/benchmarks.md, "Where issue 18 stands").

    .deps/venv/bin/python bench/lm_probe_indexes.py [N]        (default 3000)
"""
import datetime
import os
import sys
import threading
import time

from bson import Int64
from pymongo import MongoClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lm_benchlib import testbed_start, testbed_stop  # noqa: E402

SPECS = [
    {"key": {"cust": 1, "_id": -1}, "unique": True, "name": "cust_id_unique"},
    {"key": {"maybe": 1}, "sparse": True, "name": "maybe_1"},
    {"key": {"total": 1}, "partialFilterExpression": {"total": {"$gt": 100}}, "name": "total_1"},
    {"key": {"ts": 1}, "expireAfterSeconds": 10 ** 9, "name": "ts_1"},
    {"key": {"cust": 1}, "collation": {"locale": "fr", "strength": 2}, "name": "cust_fr"},
    {"key": {"tags": 1}, "hidden": True, "name": "tags_1"},
    {"key": {"cust": 1, "total": -1}, "name": "cust_1_total_-1"},
    {"key": {"loc": "2dsphere"}, "name": "loc_2dsphere"},
    {"key": {"$**": 1}, "name": "all_fields"},
]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    env = testbed_start()
    try:
        c = MongoClient(env["LM_TB_URI"])
        docs = [{"_id": i, "cust": f"c{i % 97}", "total": Int64(i * 3), "tags": ["a", "b"][: i % 3],
                 "loc": {"type": "Point", "coordinates": [i % 180 - 90.0, i % 90 - 45.0]},
                 "txt": f"order number {i}",
                 "ts": datetime.datetime(2026, 1, 1) + datetime.timedelta(minutes=i)} for i in range(n)]
        for rnd in range(2):
            for way in ("together", "one by one", "two in parallel"):
                db = c.probe
                db.drop_collection("o")
                db.o.insert_many(docs)
                t = time.monotonic()
                each = []
                if way == "together":
                    db.command("createIndexes", "o", indexes=SPECS)
                elif way == "one by one":
                    for s in SPECS:
                        t1 = time.monotonic()
                        db.command("createIndexes", "o", indexes=[s])
                        each.append(f"{s['name']} {time.monotonic() - t1:.2f}")
                else:
                    def build(specs):
                        cc = MongoClient(env["LM_TB_URI"])
                        for s in specs:
                            cc.probe.command("createIndexes", "o", indexes=[s])
                    ths = [threading.Thread(target=build, args=(SPECS[k::2],)) for k in range(2)]
                    for th in ths:
                        th.start()
                    for th in ths:
                        th.join()
                print(f"round {rnd + 1}: {way}: {time.monotonic() - t:.2f} s"
                      + (f" ({', '.join(each)})" if each else ""), flush=True)
    finally:
        testbed_stop(env["LM_TB_DIR"])


if __name__ == "__main__":
    main()
