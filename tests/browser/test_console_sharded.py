"""The web console's per-shard view of a real sharded migration (issue 17 follow-up), in
Debian's chromium driven by Playwright, against a real livemig-controlplane (HTTPS), a real
agent daemon and two sharded test beds (scripts/testbed start sharded --shards 2): no answer
is made up in the page.

    .deps/venv/bin/python tests/browser/test_console_sharded.py --build-dir build [--keep]

What it does, each step asserted on the page and on what the control plane answers:
 1. a 2-shard source (seeded; shard 1 holds enough that its copy lasts while it is taken
    away) and a 2-shard target, both registered by their routers; an agent linked;
 2. a migration started through the API (the wizard is test_console.py's), opened from the
    console's Live Migration page; the per-shard table shows both shards with their target
    shard, host, state, phase and percentage as the server answers them;
 3. shard 1's source is lost for 25 s as its copy starts (`testbed fault DIR lose-shard 1
    25`, timed by the agent's local status API as in test_sharded_daemon): its row shows
    FAILED, its lastError as a banner, and its Restart button;
 4. Restart on the healthy shard: refused by the server (409 SHARD_NOT_FAILED) and shown as
    a clear message that stays; the shard goes on;
 5. once the lost server is back, Restart on the failed shard (keyboard, confirmation; the
    change carries the session's CSRF token, else the server refuses it): the row leaves
    FAILED and reaches STREAMING;
 6. Prepare to Cutover turns green, the cutover page's optime gap reaches zero, Cut Over:
    COMPLETE, every shard row COMPLETE, and `lm_check.py --sharded` finds 0 differences.
Screenshots go to BUILD/console-sharded-screenshots/. Every wait is bounded; every process
started here is stopped in a `finally` (the test-bed servers also stop with their owner).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_console import (CHROMIUM, PY, TOP, WAIT, Bed, Failure, check_labels, log,  # noqa: E402
                          press, tab_to, until, until_strict)
from playwright.sync_api import sync_playwright  # noqa: E402

DOWN_SECONDS = 25  # longer than the engines' server selection timeout (see test_sharded_daemon)


class ShardedBed(Bed):
    def start_servers(self):
        own = ["--owner-pid", str(os.getpid()), "--max-seconds", "900"]
        # both beds start at once (each is a config server, a router and two shards)
        starts = {name: subprocess.Popen([os.path.join(TOP, "scripts", "testbed"), "start", "sharded", "--shards",
                                          "2", "--prefix", name, *own], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
                  for name in ("src", "dst")}
        for name, p in starts.items():
            out, err = p.communicate(timeout=180)
            if p.returncode != 0:
                raise Failure(f"scripts/testbed start sharded --prefix {name}: {err.strip()}")
            self.servers[name] = dict(line.split("=", 1) for line in out.split() if "=" in line)
        src = self.servers["src"]
        r = subprocess.run([PY, os.path.join(TOP, "scripts", "lm_sharded.py"), "seed", "--config",
                            src["LM_TB_CONFIG_URI"], "--chunks", "3", "--docs", "300"],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise Failure(f"seeding the source: {r.stdout}{r.stderr}")
        # shard 1 holds enough that its copy lasts while its server is taken away
        r = subprocess.run([PY, "-c", "import sys, pymongo; pymongo.MongoClient(sys.argv[1]).crm.bulk"
                            ".insert_many([{'_id': i, 'v': 'x' * 200} for i in range(100000)])",
                            src["LM_TB_SHARD1_URI"]], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise Failure(f"loading shard 1: {r.stderr}")

    def setup_org(self):
        st, p, _ = self.rest("POST", "/api/atlas/v2/groups", {"name": "shop", "orgId": "org1"})
        assert st == 201, (st, p)
        self.gid = p["id"]
        for name in ("src", "dst"):
            st, p, _ = self.rest("POST", f"/api/atlas/v2/groups/{self.gid}/clusters",
                                 {"name": name, "connectionString": self.servers[name]["LM_TB_URI"]})
            assert st == 201, (name, st, p)
        st, p, _ = self.rest("POST", "/api/atlas/v2/orgs/org1/liveMigrations/linkTokens",
                             {"accessListIps": ["127.0.0.1"]})
        assert st in (200, 201), (st, p)
        self.secrets.append(p["linkToken"])
        return p["linkToken"]

    def local_phase(self, i):
        """Shard i's phase in the agent's local status API (only to time the fault)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/api/v1/status", timeout=3) as r:
                shards = json.loads(r.read()).get("shards") or []
        except OSError:
            return None
        return shards[i].get("phase") if i < len(shards) else None

    def shard_back(self, i):
        r = subprocess.run([PY, "-c", "import sys, pymongo; pymongo.MongoClient(sys.argv[1], "
                            "serverSelectionTimeoutMS=500).admin.command('ping')",
                            self.servers["src"][f"LM_TB_SHARD{i}_URI"]], capture_output=True, timeout=30)
        return r.returncode == 0


def rows(page):
    """The per-shard table as shown: {name: {target, host, state, phase, pct}}."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#shard-table tr[data-shard]')]
        .map((r) => [r.dataset.shard, {target: r.cells[1].textContent, host: r.cells[2].textContent,
                     state: r.cells[3].textContent, phase: r.cells[4].textContent,
                     pct: r.querySelector('progress').value}]))""")


def api_shards(bed, g, mig):
    st, m, _ = bed.rest("GET", f"{g}/liveMigrations/{mig}")
    assert st == 200, (st, m)
    return m, {s["name"]: s for s in m.get("shards") or []}


def run(bed):
    t0 = time.monotonic()
    bed.start_servers()
    log(f"two sharded beds up and the source seeded in {time.monotonic() - t0:.0f} s")
    bed.start_cp()
    token = bed.setup_org()
    bed.start_agent(token)
    g = f"/api/atlas/v2/groups/{bed.gid}"
    labelled = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  f"--ignore-certificate-errors-spki-list={bed.spki_pin()}"])
        try:
            ctx, page = bed.new_page(browser)
            page.goto(bed.url + "/console/")
            page.fill("#publicKey", bed.pub)
            page.fill("#privateKey", bed.priv)
            page.click("#signin-submit")
            page.wait_for_selector("#projects")
            ck = [c for c in ctx.cookies() if c["name"] == "__Host-lm_session"][0]
            bed.secrets.append(ck["value"])
            page.goto(f"{bed.url}/console/#/project/{bed.gid}")
            page.wait_for_selector("tr[data-host=console-host]", timeout=60000)

            # ---- 2. the migration; the per-shard table from the real answer ----
            st, m, _ = bed.rest("POST", f"{g}/liveMigrations", {
                "source": {"clusterName": "src", "groupId": bed.gid},
                "destination": {"clusterName": "dst", "groupId": bed.gid},
                "migrationHosts": ["console-host"]})
            assert st == 200, (st, m)
            mig = m["_id"]
            page.wait_for_selector(f"tr[data-migration='{mig}']", timeout=10000)
            press(page, f"a[data-focus-key='mig-{mig}']")
            page.wait_for_selector("#lag-timer")
            assert page.url.endswith(f"/migration/{mig}"), page.url

            # ---- 3. shard 1's source lost as its copy starts ----
            until("shard 1 copying (the agent's local status)", lambda: bed.local_phase(1) == "COPYING", 120, 0.05)
            bed.testbed("fault", bed.servers["src"]["LM_TB_DIR"], "lose-shard", "1", str(DOWN_SECONDS))
            lost_at = time.monotonic()
            log("shard 1's source lost as its copy started")
            page.wait_for_selector("tr[data-shard=src-shard0]", timeout=60000)
            page.wait_for_selector("tr[data-shard=src-shard1]", timeout=60000)
            seen = []

            def failed():
                r = rows(page)
                seen.append({k: (v["state"], v["phase"], v["pct"]) for k, v in r.items()})
                return r.get("src-shard1", {}).get("state") == "FAILED"
            until("the page to show shard src-shard1 FAILED", failed, 90, 0.5)
            # shard 0 goes on to stream; the page's rows then match the server's answer
            until("the page to show shard src-shard0 STREAMING",
                  lambda: rows(page)["src-shard0"]["phase"] == "STREAMING", 120)

            def page_matches_api():
                shown = rows(page)
                m, by_name = api_shards(bed, g, mig)
                want = {n: {"target": s["targetShard"], "host": s["migrationHost"], "state": s["state"],
                            "phase": s["phase"], "pct": round(s["percentage"] or 0)} for n, s in by_name.items()}
                return shown == want and (shown, m, by_name)
            shown, m, by_name = until("the table to show the server's answer", page_matches_api, 15)
            assert sorted(shown) == ["src-shard0", "src-shard1"], shown
            assert shown["src-shard0"]["target"] == "dst-shard0" and shown["src-shard1"]["target"] == "dst-shard1", shown
            assert shown["src-shard0"]["state"] == "RUNNING", shown
            assert shown["src-shard1"]["pct"] < 100, shown
            last = by_name["src-shard1"]["lastError"]
            assert last, by_name
            banner = page.text_content("[data-banner=shard-src-shard1]")
            assert last in banner, (last, banner)
            assert not m["readyForCutover"] and page.eval_on_selector("#prepare", "(b) => b.disabled"), m
            assert page.eval_on_selector("[aria-label='Restart shard src-shard1']", "(b) => !b.disabled")
            assert "per shard" in page.text_content("#collections-sharded")
            # the documents copied are the shards' own; not "copied" while a shard is not
            total = sum(s["documentsCopied"] for s in by_name.values())
            until("the documents copied to be the shards' sum", lambda: page.text_content("#docs") == str(total), 10)
            assert page.text_content("#copy-remaining") != "copied", page.text_content("#copy-remaining")
            check_labels(page, "progress (shards)", labelled)
            distinct = []
            for s in seen:
                if not distinct or distinct[-1] != s:
                    distinct.append(s)
            log(f"rows seen until FAILED: {distinct}")
            log(f"shown: {shown}; banner {banner[:160]!r}")
            bed.shot(page, "shards-failed")

            # ---- 4. Restart on a healthy shard: refused, and said so ----
            press(page, "[aria-label='Restart shard src-shard0']")
            page.wait_for_selector("#confirm[open]")
            tab_to(page, "#confirm-yes")
            page.keyboard.press("Enter")
            note = page.wait_for_selector("[data-banner=shard-restart-src-shard0]", timeout=10000).text_content()
            assert "was not restarted (409 SHARD_NOT_FAILED)" in note and "only a FAILED shard is restarted" in note, note
            page.wait_for_timeout(4500)  # two polls later: still shown, and the focus kept
            note2 = page.text_content("[data-banner=shard-restart-src-shard0]")
            assert note2 == note, (note, note2)
            assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Restart shard src-shard0"
            _, by_name = api_shards(bed, g, mig)
            assert by_name["src-shard0"]["state"] == "RUNNING", by_name
            log(f"Restart of the healthy shard refused: {note!r}")
            bed.shot(page, "shard-restart-refused")

            # ---- 5. the lost server back: Restart the failed shard ----
            until("the lost shard's server to be back", lambda: bed.shard_back(1), DOWN_SECONDS + 60, 0.5)
            log(f"shard 1's server back {time.monotonic() - lost_at:.0f} s after it was lost")
            press(page, "[aria-label='Restart shard src-shard1']")
            page.wait_for_selector("#confirm[open]")
            assert "src-shard1" in page.text_content("#confirm"), page.text_content("#confirm")
            tab_to(page, "#confirm-yes")
            page.keyboard.press("Enter")
            note = page.wait_for_selector("[data-banner=shard-restart-src-shard1]", timeout=10000).text_content()
            assert "restart requested" in note, note
            until("the control plane to log the restart",
                  lambda: f"live migration {mig}: restart of shard src-shard1 requested" in bed.slurp("cp.log"), 10)
            states = []

            def left_failed():
                s = rows(page)["src-shard1"]["state"]
                states.append(s)
                return s != "FAILED"
            until("the row of src-shard1 to leave FAILED", left_failed, 60)
            until("src-shard1 STREAMING", lambda: rows(page)["src-shard1"]["phase"] == "STREAMING", WAIT)
            log(f"src-shard1 after Restart: {sorted(set(states))} then STREAMING")
            bed.shot(page, "shard-restarted")

            # ---- 6. cutover from the console ----
            until_strict("Prepare to Cutover to turn green", lambda: page.eval_on_selector(
                "#prepare", "(b) => !b.disabled && b.classList.contains('ready')"), WAIT)
            press(page, "#prepare")
            page.wait_for_selector("#optime-gap")

            def at_zero():
                shown, enabled = page.evaluate(
                    "() => [document.getElementById('optime-gap').textContent,"
                    " !document.getElementById('cutover').disabled]")
                if enabled and shown != "0 s":
                    raise Failure(f"Cut Over enabled while the optime gap shows {shown!r}")
                return shown == "0 s" and enabled
            until_strict("the optime gap to reach zero and Cut Over to be enabled", at_zero, WAIT)
            press(page, "#cutover")
            until("COMPLETE", lambda: "COMPLETE" in page.text_content("#status"), WAIT)
            page.goto(f"{bed.url}/console/#/project/{bed.gid}/migration/{mig}")
            until("every shard row COMPLETE", lambda: all(
                r["state"] == "COMPLETE" and r["phase"] == "COMPLETE" for r in rows(page).values())
                and len(rows(page)) == 2, 30)
            bed.shot(page, "shards-complete")
            src, dst = bed.servers["src"], bed.servers["dst"]
            r = subprocess.run([PY, os.path.join(TOP, "scripts", "lm_check.py"), "--sharded", "--source",
                                src["LM_TB_CONFIG_URI"], "--target", dst["LM_TB_CONFIG_URI"]],
                               capture_output=True, text=True, timeout=300)
            log(f"lm_check --sharded: {r.stdout.strip()[-300:]}")
            if r.returncode != 0 or ": 0 differences" not in r.stdout:
                raise Failure(f"the target differs from the source: {r.stdout}{r.stderr}")
            ctx.close()
        finally:
            browser.close()
    if bed.csp_violations:
        raise Failure(f"Content-Security-Policy violations: {bed.csp_violations}")
    for name in ("cp.log", "agent.log"):
        text = bed.slurp(name)
        for s in bed.secrets:
            if s and s in text:
                raise Failure(f"a secret ({len(s)} characters) is in {name}")
    bed.stop("agent")
    assert bed.stop("cp") == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(TOP, "build"))
    ap.add_argument("--keep", action="store_true", help="keep the directory with every log")
    a = ap.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        print(f"console-test: {CHROMIUM} is missing: run scripts/setup (Debian package chromium)", file=sys.stderr)
        return 1
    bed = ShardedBed(a.build_dir, a.keep, "console-sharded-screenshots")
    ok = False
    t0 = time.monotonic()
    try:
        run(bed)
        ok = True
        log(f"passed in {time.monotonic() - t0:.0f} s; screenshots in {bed.shots}")
    except (Failure, AssertionError) as e:
        log(f"FAILED: {type(e).__name__}: {e}")
        for name in ("cp.log", "agent.log"):
            log(f"--- last lines of {name} ---\n" + "\n".join(bed.slurp(name).splitlines()[-25:]))
    finally:
        bed.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
