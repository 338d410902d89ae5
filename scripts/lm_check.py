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

    lm_check.py --sharded --source CONFIG_URI --target CONFIG_URI [...]

Two sharded test beds (scripts/testbed start sharded), given by their config servers' URIs:
the sharding metadata (same shard count, database primaries on paired shards, shard keys
and the unique flag, chunk maps with paired owners), then source shard i against target
shard i with the checks above, so a document on the wrong shard is a difference. Shards
pair by position in natural name order (scripts/lm_sharded.py).
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


def compare_pair(s, t, a, diffs, label=""):
    """Every check above between two servers; returns (namespaces, documents) checked."""
    sn, tn = namespaces(s), namespaces(t)
    docs, checked = 0, 0
    before = len(diffs)
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
    if label:
        diffs[before:] = [f"{label}: {d}" for d in diffs[before:]]
    return checked, docs


def sharded_metadata_diffs(src, dst, a, diffs):
    """Returns the source->target shard pairs, or None when the shard counts differ."""
    from bson import encode
    sm, dm = src.meta, dst.meta
    if len(src.shard_names) != len(dst.shard_names):
        diffs.append(f"shards: the source has {len(src.shard_names)}, the target {len(dst.shard_names)}")
        return None
    pair = dict(zip(src.shard_names, dst.shard_names))
    sdbs = {d["_id"]: d["primary"] for d in sm.cfg.databases.find({})}
    ddbs = {d["_id"]: d["primary"] for d in dm.cfg.databases.find({})}
    for db, primary in sorted(sdbs.items()):
        if db not in ddbs:
            diffs.append(f"database {db}: missing from the target's config.databases")
        elif ddbs[db] != pair[primary]:
            diffs.append(f"database {db}: primary shard {ddbs[db]} on the target, want {pair[primary]} "
                         f"(source {primary})")
    scolls = {c["_id"]: c for c in sm.cfg.collections.find({}) if selected(c["_id"], a.include, a.exclude)}
    dcolls = {c["_id"]: c for c in dm.cfg.collections.find({})}
    for ns, c in sorted(scolls.items()):
        d = dcolls.get(ns)
        if d is None:
            diffs.append(f"{ns}: sharded on the source with key {dict(c['key'])}, not sharded on the target")
            continue
        if list(dict(c["key"]).items()) != list(dict(d["key"]).items()):
            diffs.append(f"{ns}: shard key {dict(d['key'])} on the target, {dict(c['key'])} on the source")
        if bool(c.get("unique")) != bool(d.get("unique")):
            diffs.append(f"{ns}: shard key unique={bool(d.get('unique'))} on the target, "
                         f"{bool(c.get('unique'))} on the source")
        want = [(encode(dict(x["min"])), encode(dict(x["max"])), pair[x["shard"]]) for x in sm.chunks(c)]
        got = [(encode(dict(x["min"])), encode(dict(x["max"])), x["shard"]) for x in dm.chunks(d)]
        if want != got:
            first = next((i for i, (w, g) in enumerate(zip(want, got)) if w != g), min(len(want), len(got)))
            diffs.append(f"{ns}: chunk map differs: source {len(want)} chunks, target {len(got)}, "
                         f"first difference at chunk {first}")
    for ns in sorted(set(dcolls) - set(sm.cfg.collections.distinct("_id"))):
        diffs.append(f"{ns}: sharded on the target but not on the source")
    return pair


def main_sharded(a):
    import lm_sharded
    src, dst = lm_sharded.Cluster(a.source), lm_sharded.Cluster(a.target)
    diffs, checked, docs = [], 0, 0
    pair = sharded_metadata_diffs(src, dst, a, diffs)
    if pair is not None:
        for i, (s_uri, t_uri) in enumerate(zip(src.shard_uris, dst.shard_uris)):
            s, t = client(s_uri, None, None, None), client(t_uri, None, None, None)
            n, d = compare_pair(s, t, a, diffs, f"shard {i} ({src.shard_names[i]} -> {dst.shard_names[i]})")
            checked, docs = checked + n, docs + d
            s.close()
            t.close()
    src.close()
    dst.close()
    return checked, docs, diffs


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
    ap.add_argument("--sharded", action="store_true",
                    help="--source and --target are the config server URIs of two sharded test beds")
    a = ap.parse_args()
    if a.sharded:
        if a.source_ca_file or a.target_ca_file or a.source_user or a.target_user:
            ap.error("--sharded: the sharded test bed has no TLS or auth yet; drop the CA and user options")
        checked, docs, diffs = main_sharded(a)
    else:
        s = client(a.source, a.source_ca_file, a.source_user, a.source_password_file)
        t = client(a.target, a.target_ca_file, a.target_user, a.target_password_file)
        diffs = []
        checked, docs = compare_pair(s, t, a, diffs)
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
