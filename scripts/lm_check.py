"""livemig checker: compares a source and a target with pymongo (a client livemig did not
write), byte for byte.

    lm_check.py --source URI --target URI [--include PAT]... [--exclude PAT]...
                [--source-ca-file F] [--target-ca-file F] [--source-user U --source-password-file F]
                [--target-user U --target-password-file F] [--no-indexes] [--json]

For every selected namespace: the same documents (raw BSON bytes, matched by _id), the same
index specs (name, key and options; "v" and "ns" ignored), the same collection options
(uuid ignored) and the same views. Namespaces excluded by the patterns must be absent on
the target. Exit status 0 when there is no difference, 1 otherwise, 2 on bad usage.
Patterns are shell globs over "db.coll", as in livemig.
"""

import argparse
import fnmatch
import json
import sys

from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

INTERNAL_DBS = {"admin", "local", "config", "__livemig"}
MAX_LISTED = 20


def client(uri, ca, user, pwfile):
    kw = {"document_class": RawBSONDocument, "serverSelectionTimeoutMS": 10000}
    if ca:
        kw.update(tls=True, tlsCAFile=ca)
    if user:
        with open(pwfile) as f:
            kw.update(username=user, password=f.read().strip(), authSource="admin")
    return MongoClient(uri, **kw)


def selected(ns, include, exclude):
    db, _, coll = ns.partition(".")
    if db in INTERNAL_DBS or coll.startswith("system."):
        return False
    if include and not any(fnmatch.fnmatchcase(ns, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(ns, p) for p in exclude)


def namespaces(c):
    out = {}
    for db in c.list_database_names():
        if db in INTERNAL_DBS:
            continue
        for info in c[db].list_collections():
            name = info["name"]
            if name.startswith("system."):
                continue
            opts = {k: v for k, v in dict(info.get("options", {})).items() if k != "uuid"}
            out[f"{db}.{name}"] = (info.get("type", "collection"), opts)
    return out


def decoded(raw):
    return {k: raw[k] for k in raw.keys()}


def index_specs(coll):
    specs = {}
    for spec in coll.list_indexes():
        d = decoded(spec)
        name = d.pop("name")
        d.pop("v", None)
        d.pop("ns", None)
        specs[name] = d
    return specs


def compare_docs(ns, s, t, diffs):
    db, _, coll = ns.partition(".")
    target = {}
    for doc in t[db][coll].find({}):
        target[bytes(_id_bytes(doc))] = doc.raw
    count = 0
    for doc in s[db][coll].find({}):
        count += 1
        key = bytes(_id_bytes(doc))
        got = target.pop(key, None)
        if got is None:
            diffs.append(f"{ns}: document _id={doc['_id']!r} missing on the target")
        elif got != doc.raw:
            diffs.append(f"{ns}: document _id={doc['_id']!r} differs in {field_diff(doc.raw, got)}")
    if target:
        from bson import decode
        ids = ", ".join(repr(decode(k)["_id"]) for k in list(target)[:MAX_LISTED])
        diffs.append(f"{ns}: target has {len(target)} extra document(s): _id {ids}")
    return count


def field_diff(src_raw, dst_raw):
    """Names the top-level fields that differ (value, presence or order), not their values."""
    from bson import decode
    from bson.codec_options import CodecOptions
    opts = CodecOptions(document_class=RawBSONDocument)
    a, b = decode(src_raw, opts), decode(dst_raw, opts)
    names = [k for k in a.keys() if k not in b.keys() or encode_one(a, k) != encode_one(b, k)]
    names += ["+" + k for k in b.keys() if k not in a.keys()]
    if not names:
        return "field order: source %s, target %s" % (list(a.keys()), list(b.keys()))
    return "fields " + ", ".join(names) + " (+ = only on the target)"


def encode_one(doc, key):
    from bson import encode
    return encode({key: doc[key]})


def _id_bytes(raw_doc):
    """The raw BSON element of _id (type, name, value), a stable key for any _id type."""
    from bson import encode
    return encode({"_id": raw_doc["_id"]})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for side in ("source", "target"):
        ap.add_argument(f"--{side}", required=True)
        ap.add_argument(f"--{side}-ca-file")
        ap.add_argument(f"--{side}-user")
        ap.add_argument(f"--{side}-password-file")
    ap.add_argument("--include", action="append", default=[])
    ap.add_argument("--exclude", action="append", default=[])
    ap.add_argument("--no-indexes", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    s = client(a.source, a.source_ca_file, a.source_user, a.source_password_file)
    t = client(a.target, a.target_ca_file, a.target_user, a.target_password_file)
    sn, tn = namespaces(s), namespaces(t)
    diffs, docs, checked = [], 0, 0
    for ns, (kind, opts) in sorted(sn.items()):
        if not selected(ns, a.include, a.exclude):
            if ns in tn:
                diffs.append(f"{ns}: excluded, but present on the target")
            continue
        checked += 1
        if ns not in tn:
            diffs.append(f"{ns}: missing on the target")
            continue
        tkind, topts = tn[ns]
        if (kind, opts) != (tkind, topts):
            diffs.append(f"{ns}: {kind} options differ: source {opts!r}, target {topts!r}")
        if kind == "view":
            continue
        docs += compare_docs(ns, s, t, diffs)
        if not a.no_indexes:
            db, _, coll = ns.partition(".")
            si, ti = index_specs(s[db][coll]), index_specs(t[db][coll])
            if si != ti:
                diffs.append(f"{ns}: indexes differ: source {si!r}, target {ti!r}")
    for ns in sorted(set(tn) - set(sn)):
        diffs.append(f"{ns}: on the target but not on the source")
    report = {"namespaces": checked, "documents": docs, "differences": len(diffs), "details": diffs[:200]}
    if a.json:
        print(json.dumps(report, default=str))
    else:
        print(f"checked {checked} namespaces, {docs} documents: {len(diffs)} differences")
        for d in diffs[:200]:
            print("  " + d)
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
