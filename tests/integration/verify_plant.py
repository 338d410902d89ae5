"""Plants one difference on a target copied from scripts/lm_seed.py's full dataset, or
undoes it (the target gets the source's bytes back). Used by test_verify.c.

    verify_plant.py SOURCE_URI TARGET_URI plant|undo KIND

KIND: field (shop.orders _id 5: a value changed), missing (shop.orders _id 7 deleted),
extra (shop.orders _id 999999 inserted), unique (index cust_id_unique recreated without
unique), ttl (index ts_1: expireAfterSeconds changed by collMod to 999999999, one second
less than the source's: a small value would let the TTL monitor delete the collection), order (analytics.types
_id 3: the same fields in another order), type (analytics.types _id 15: int32 -> double),
option (crm.events: capped collection dropped and recreated plain with its documents).
"""
import sys

from bson import SON
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient


def copy_back(s, t, db, coll, _id):
    # delete + insert, not replace: FerretDB skips a replacement that only changes a type
    doc = s[db][coll].find_one({"_id": _id})
    t[db][coll].delete_one({"_id": _id})
    t[db][coll].insert_one(doc)


def main():
    src_uri, dst_uri, action, kind = sys.argv[1:5]
    s = MongoClient(src_uri, document_class=RawBSONDocument)
    t = MongoClient(dst_uri, document_class=RawBSONDocument)
    orders = t.shop.orders
    plant = action == "plant"
    if kind == "field":
        if plant:
            orders.update_one({"_id": 5}, {"$set": {"cust": "planted"}})
        else:
            copy_back(s, t, "shop", "orders", 5)
    elif kind == "missing":
        if plant:
            orders.delete_one({"_id": 7})
        else:
            copy_back(s, t, "shop", "orders", 7)
    elif kind == "extra":
        if plant:
            orders.insert_one({"_id": 999999, "cust": "planted"})
        else:
            orders.delete_one({"_id": 999999})
    elif kind == "unique":
        orders.drop_index("cust_id_unique")
        orders.create_index([("cust", 1), ("_id", -1)], name="cust_id_unique", unique=not plant)
    elif kind == "ttl":
        t.shop.command("collMod", "orders",
                       index={"name": "ts_1", "expireAfterSeconds": 999999999 if plant else 1000000000})
    elif kind == "order":
        if plant:
            d = s.analytics.types.find_one({"_id": 3})
            keys = list(d.keys())
            t.analytics.types.replace_one({"_id": 3}, SON((k, d[k]) for k in ["_id"] + keys[1:][::-1]))
        else:
            copy_back(s, t, "analytics", "types", 3)
    elif kind == "type":
        if plant:
            t.analytics.types.update_one({"_id": 15}, {"$set": {"v": -2147483647.0}})
        else:
            copy_back(s, t, "analytics", "types", 15)
    elif kind == "option":
        docs = list(t.crm.events.find({}))
        t.crm.events.drop()
        t.crm.create_collection("events")
        t.crm.events.insert_many(docs)
    else:
        sys.exit(f"unknown kind {kind}")


if __name__ == "__main__":
    main()
