"""How long SecantusDB takes to answer a find on a large collection: the first batch, every
document, and a count, on one fresh server seeded with N documents of ~1 KB (the W1 layout of
bench/copy). Two rounds (issue 18: docs/benchmarks.md, "Where issue 18 stands").

    .deps/venv/bin/python bench/lm_probe_first_batch.py [N]        (default 200000)
"""
import os
import subprocess
import sys
import time

from pymongo import MongoClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lm_benchlib import PY, TOP, testbed_start, testbed_stop  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    env = testbed_start()
    try:
        subprocess.run([PY, os.path.join(TOP, "scripts", "lm_seed.py"), "--uri", env["LM_TB_URI"],
                        "bulk", "--docs", str(n), "--collections", "1", "--doc-bytes", "1000",
                        "--no-index", "--db", "bulk"], check=True, capture_output=True)
        coll = MongoClient(env["LM_TB_URI"]).bulk.c000
        for rnd in range(2):
            t = time.monotonic()
            cur = coll.find({}, batch_size=1000)
            next(cur)
            first = time.monotonic() - t
            got = 1 + sum(1 for _ in cur)
            every = time.monotonic() - t
            t = time.monotonic()
            coll.database.command("count", "c000")
            print(f"round {rnd + 1}: first batch {first:.2f} s, all {got} documents {every:.2f} s, "
                  f"count {time.monotonic() - t:.2f} s", flush=True)
    finally:
        testbed_stop(env["LM_TB_DIR"])


if __name__ == "__main__":
    main()
