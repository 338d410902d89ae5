"""The web console in a real browser (issue 17): Debian's chromium, headless, driven by
Playwright (pinned in scripts/requirements-test.txt; the browser is the system's, never a
download), against a real livemig-controlplane (HTTPS, its own CA), a real agent daemon
linked with a link-token made in the console, SecantusDB servers and scripts/lm_writer.py.

    .deps/venv/bin/python tests/browser/test_console.py --build-dir build [--keep]

What it does, each step asserted on what the server and the servers hold, not only on the
page (screenshots of each step go to BUILD/console-screenshots/):
 1. sign in as an Owner with the keyboard only (Tab/Enter), pick the project;
 2. generate a link-token in the console; the agent links with it and appears as a host;
 3. the wizard: target, "I'm ready", source, host, Validate (every check shown), review,
    Start; the lag timer shows the lag, Prepare to Cutover turns green;
 4. the cutover page: the writer stops, the optime gap reaches zero, Cut Over enabled,
    pressed: COMPLETE, then scripts/lm_check.py finds 0 differences (the per-shard view of
    a real sharded migration is tests/browser/test_console_sharded.py);
 5. a second migration: Extend (+24 h seen in the time left) and Cancel (the confirmation
    says the data stays; it does);
 6. an Organization Member: every change control disabled, and a forged fetch refused 403
    by the server;
 7. CSRF: a cookie-authenticated change without, or with a wrong, X-CSRF-Token: 403, and
    nothing changed; the cookie's attributes; no plain-HTTP answer at all;
 8. sign-out: the old cookie is refused afterwards; idle expiry with a short idle setting;
 9. every input of every page visited has a label; no CSP violation; no secret in the logs.

Every wait is bounded; every process started here is stopped in a `finally` (the test-bed
servers also stop with their owner, --owner-pid).
"""

import argparse
import base64
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = os.path.join(TOP, ".deps", "venv", "bin", "python")
CHROMIUM = "/usr/bin/chromium"
IDLE_SECONDS = 20  # console_session_idle of this control plane (pages poll every 2 s)
WAIT = 240  # the longest any one wait may take, in seconds
WINDOW_SECONDS = 300  # cutover_window: short, so that the console warns it closes soon

from playwright.sync_api import sync_playwright  # noqa: E402


class Failure(Exception):
    pass


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} console-test: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def until(what, fn, seconds=WAIT, every=0.5):
    """Calls fn until it returns something true; fails naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001 - shown if it never succeeds
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise Failure(f"timed out after {seconds} s waiting for {what} (last: {last!r})")


def until_strict(what, fn, seconds=WAIT, every=0.5):
    """As until, but a Failure raised by fn fails at once."""
    def guarded():
        try:
            return fn()
        except Failure:
            raise
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if guarded():
            return True
        time.sleep(every)
    raise Failure(f"timed out after {seconds} s waiting for {what}")


class Bed:
    def __init__(self, build, keep, shots="console-screenshots"):
        self.build = os.path.abspath(build)
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="lm-console-")
        os.chmod(self.dir, 0o700)
        self.shots = os.path.join(self.build, shots)
        shutil.rmtree(self.shots, ignore_errors=True)
        os.makedirs(self.shots)
        self.procs = {}
        self.servers = {}
        self.shot_n = 0
        self.csp_violations = []
        self.secrets = []  # strings that must never reach a log

    # ---- processes ----

    def path(self, name):
        return os.path.join(self.dir, name)

    def spawn(self, name, argv, logname):
        out = open(self.path(logname), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=self.dir)
        out.close()
        self.procs[name] = p
        return p

    def stop(self, name, sig=signal.SIGTERM):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode if p else None

    def slurp(self, name):
        try:
            with open(self.path(name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def testbed(self, *args):
        r = subprocess.run([os.path.join(TOP, "scripts", "testbed"), *args], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise Failure(f"scripts/testbed {' '.join(args)}: {r.stderr.strip()}")
        return dict(line.split("=", 1) for line in r.stdout.split() if "=" in line)

    def cleanup(self, ok):
        for name in list(self.procs):
            self.stop(name, signal.SIGKILL)
        for s in self.servers.values():
            subprocess.run([os.path.join(TOP, "scripts", "testbed"), "stop", s["LM_TB_DIR"]],
                           capture_output=True)
        if ok and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            log(f"logs kept in {self.dir}")

    # ---- set-up ----

    def start_servers(self):
        own = ["--owner-pid", str(os.getpid()), "--max-seconds", "900"]
        self.servers["src"] = self.testbed("start", "secantus-auth", *own)
        self.servers["dst"] = self.testbed("start", "secantus", *own)
        self.servers["dst2"] = self.testbed("start", "secantus", *own)
        src = self.servers["src"]
        with open(src["LM_TB_PASSWORD_FILE"]) as f:
            self.secrets.append(f.read().strip())
        r = subprocess.run(self.writer_argv("--seconds", "0", "--docs", "2000"), capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise Failure(f"loading the source: {r.stderr}")

    def writer_argv(self, *extra):
        src = self.servers["src"]
        return [PY, os.path.join(TOP, "scripts", "lm_writer.py"), "--uri", src["LM_TB_URI"],
                "--user", src["LM_TB_USER"], "--password-file", src["LM_TB_PASSWORD_FILE"], *extra]

    def start_cp(self):
        certs = self.path("certs")
        subprocess.run([os.path.join(TOP, "scripts", "mkcerts"), certs], check=True, capture_output=True)
        self.ca = os.path.join(certs, "ca.pem")
        self.cert = os.path.join(certs, "server.pem")
        key = self.path("secrets.key")
        write_private(key, secrets.token_hex(32) + "\n")
        self.cp_port = free_port()
        self.cp_conf = self.path("cp.yaml")
        with open(self.cp_conf, "w") as f:
            f.write(f"listen: 127.0.0.1:{self.cp_port}\n"
                    f"tls:\n  cert_file: {certs}/server.pem\n  key_file: {certs}/server.key\n"
                    f"  ca_file: {certs}/ca.pem\n"
                    f"db_path: {self.dir}/cp.db\nsecrets_key_file: {key}\nheartbeat_interval: 1s\n"
                    f"poll_timeout: 3s\nconsole_session_idle: {IDLE_SECONDS}s\nlog_level: debug\n"
                    f"cutover_window: {WINDOW_SECONDS}s\n")
        # LM_CP_BIN / LM_AGENT_BIN: other builds of them (a ThreadSanitizer one, by hand)
        cp_bin = os.environ.get("LM_CP_BIN") or os.path.join(self.build, "controlplane", "livemig-controlplane")
        r = subprocess.run([cp_bin, "--config", self.cp_conf, "bootstrap", "--org", "org1"],
                           capture_output=True, text=True, check=True)
        self.pub = re.search(r"public key:\s+(\S+)", r.stdout).group(1)
        self.priv = re.search(r"private key:\s+(\S+)", r.stdout).group(1)
        self.secrets.append(self.priv)
        self.spawn("cp", [cp_bin, "--config", self.cp_conf], "cp.log")
        until("the control plane to listen", lambda: "LISTENING port=" in self.slurp("cp.log"), 30, 0.05)
        self.url = f"https://127.0.0.1:{self.cp_port}"
        self.ctx = ssl.create_default_context(cafile=self.ca)

    def rest(self, method, path, body=None, pub=None, priv=None, cookie=None, headers=None):
        """One admin API call (HTTP Basic with the Owner key unless a cookie is given):
        (status, JSON or None, response headers)."""
        h = dict(headers or {})
        if cookie is not None:
            h["Cookie"] = cookie
        else:
            cred = base64.b64encode(f"{pub or self.pub}:{priv or self.priv}".encode()).decode()
            h["Authorization"] = "Basic " + cred
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=20) as r:
                text = r.read()
                return r.status, json.loads(text) if text else None, r.headers
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, json.loads(text) if text else None, e.headers

    def setup_org(self):
        st, p, _ = self.rest("POST", "/api/atlas/v2/groups", {"name": "shop", "orgId": "org1"})
        assert st == 201, (st, p)
        self.gid = p["id"]
        src, dst, dst2 = self.servers["src"], self.servers["dst"], self.servers["dst2"]
        with open(src["LM_TB_PASSWORD_FILE"]) as f:
            pw = f.read().strip()
        for name, uri, extra in (
                ("a-target", dst["LM_TB_URI"], {}),
                ("b-source", src["LM_TB_URI"], {"username": src["LM_TB_USER"], "password": pw}),
                ("c-target", dst2["LM_TB_URI"], {})):
            st, p, _ = self.rest("POST", f"/api/atlas/v2/groups/{self.gid}/clusters",
                                 {"name": name, "connectionString": uri, **extra})
            assert st == 201, (name, st, p)
        st, p, _ = self.rest("POST", "/api/atlas/v2/orgs/org1/apiKeys",
                             {"desc": "read-only", "roles": ["ORG_MEMBER"]})
        assert st == 201, (st, p)
        self.member_pub, self.member_priv = p["publicKey"], p["privateKey"]
        self.secrets.append(self.member_priv)

    def start_agent(self, token):
        token_file = self.path("link.token")
        write_private(token_file, token + "\n")
        conf = self.path("agent.yaml")
        self.status_port = free_port()  # the agent's local status API
        with open(conf, "w") as f:
            f.write(f"control_plane:\n  link_token_file: {token_file}\n  ca_file: {self.ca}\n"
                    f"  url: {self.url}\n"
                    f"state_dir: {self.dir}/agent-state\nhostname: console-host\n"
                    f"heartbeat_interval: 1s\npoll_timeout: 3s\n"
                    f"status_addr: 127.0.0.1:{self.status_port}\nlog_level: info\n")
        agent_bin = os.environ.get("LM_AGENT_BIN") or os.path.join(self.build, "agent", "livemig-agent")
        self.spawn("agent", [agent_bin, "--config", conf],
                   "agent.log")

    # ---- browser helpers ----

    def spki_pin(self):
        """base64 SHA-256 of the control plane certificate's public key: chromium trusts this
        one certificate (--ignore-certificate-errors-spki-list), not any certificate."""
        pub = subprocess.run(["openssl", "x509", "-in", self.cert, "-pubkey", "-noout"],
                             capture_output=True, check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                             capture_output=True, check=True).stdout
        dig = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der,
                             capture_output=True, check=True).stdout
        return base64.b64encode(dig).decode()

    def shot(self, page, name):
        """A screenshot of the page with the link-token, when shown, painted over."""
        self.shot_n += 1
        path = os.path.join(self.shots, f"{self.shot_n:02d}-{name}.png")
        page.screenshot(path=path, full_page=True, mask=[page.locator("#token-value")])
        log(f"screenshot {os.path.basename(path)}")

    def new_page(self, browser):
        ctx = browser.new_context(viewport={"width": 1200, "height": 860})
        page = ctx.new_page()
        page.set_default_timeout(30000)
        page.on("console", lambda m: self.csp_violations.append(m.text)
                if "Content Security Policy" in m.text else None)
        return ctx, page


def tab_to(page, selector, limit=60):
    """Presses Tab until the focused element matches selector (keyboard only); fails if it
    is not reachable within `limit` presses."""
    for _ in range(limit):
        if page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise Failure(f"{selector} is not reachable with Tab")


def press(page, selector):
    tab_to(page, selector)
    page.keyboard.press("Enter")


def unlabeled(page):
    """The visible inputs, selects and textareas with no label (label[for] or aria-label)."""
    return page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter((e) => e.offsetParent !== null && e.type !== 'hidden')
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map((e) => e.outerHTML)""")


def check_labels(page, where, seen):
    bad = unlabeled(page)
    if bad:
        raise Failure(f"{where}: inputs without a label: {bad}")
    seen.append(where)


def changes_enabled(page):
    return page.evaluate("() => [...document.querySelectorAll('[data-change]')].filter((b) => !b.disabled).map((b) => b.textContent)")


def fetch(page, method, path, csrf=None, body=None):
    """A fetch from the page's origin with its cookie: {status, code}."""
    return page.evaluate("""async ([method, path, csrf, body]) => {
        const headers = {'Content-Type': 'application/json'};
        if (csrf !== null) headers['X-CSRF-Token'] = csrf;
        const r = await fetch(path, {method, headers, credentials: 'same-origin',
                                     body: body === null ? undefined : JSON.stringify(body)});
        let j = null; try { j = await r.json(); } catch (e) {}
        return {status: r.status, code: j && j.errorCode};
    }""", [method, path, csrf, body])


def run(bed):
    bed.start_servers()
    bed.start_cp()
    bed.setup_org()
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
            # ---- 1. sign in, keyboard only ----
            resp = page.goto(bed.url + "/console/")
            hdr = resp.headers
            assert "script-src 'self'" in hdr["content-security-policy"], hdr
            assert "frame-ancestors 'none'" in hdr["content-security-policy"], hdr
            assert hdr["x-content-type-options"] == "nosniff" and hdr["referrer-policy"] == "no-referrer", hdr
            html = page.content()
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
            assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
            page.wait_for_selector("#signin")
            check_labels(page, "sign-in", labelled)
            bed.shot(page, "signin")
            tab_to(page, "#signin-submit")
            outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline == "solid", f"no visible focus on the focused button: {outline}"
            tab_to(page, "#publicKey")
            page.keyboard.type(bed.pub)
            page.keyboard.press("Tab")
            page.keyboard.type(bed.priv)
            page.keyboard.press("Enter")
            page.wait_for_selector("#projects")
            cookies = [c for c in ctx.cookies() if c["name"] == "__Host-lm_session"]
            assert cookies, ctx.cookies()
            ck = cookies[0]
            assert ck["httpOnly"] and ck["secure"] and ck["sameSite"] == "Strict" and ck["path"] == "/", ck
            assert "lm_session" not in page.evaluate("document.cookie"), "the session cookie is readable by scripts"
            bed.secrets.append(ck["value"])
            bed.shot(page, "projects")
            press(page, "a[data-project=shop]")
            page.wait_for_selector("#token-generate")
            check_labels(page, "live-migration", labelled)

            # ---- 2. link-token made in the console; the agent links with it ----
            tab_to(page, "#access-ips")
            page.keyboard.type("127.0.0.1")
            press(page, "#token-generate")
            token = page.wait_for_selector("#token-value").text_content().strip()
            assert token and "Access list: 127.0.0.1" in page.text_content("#token-out")
            bed.secrets.append(token)
            bed.shot(page, "link-token")
            bed.start_agent(token)
            page.wait_for_selector("tr[data-host=console-host]", timeout=60000)
            until("the host's heartbeat in the table",
                  lambda: "ago" in page.text_content("tr[data-host=console-host]"), 30)
            bed.shot(page, "host-linked")

            # ---- 3. the wizard, with a writer running ----
            stop_file = bed.path("writer.stop")
            bed.spawn("writer", bed.writer_argv("--no-load", "--docs", "2000", "--seconds", "100000",
                                                "--rate", "20", "--stop-file", stop_file), "writer.log")
            press(page, "#start-wizard")
            page.wait_for_selector("#target-cluster")
            check_labels(page, "wizard: target", labelled)
            assert page.input_value("#target-cluster") == "a-target"
            press(page, "#ready")
            page.wait_for_selector("#src-cluster")
            check_labels(page, "wizard: source", labelled)
            page.check("#kind-det")  # the connection-details form: labelled too
            check_labels(page, "wizard: source details", labelled)
            tab_to(page, "#kind-det")
            page.keyboard.press("ArrowUp")  # back to "a registered cluster", by keyboard
            assert page.is_checked("#kind-reg")
            tab_to(page, "#src-cluster")
            page.keyboard.type("b-source")
            assert page.input_value("#src-cluster") == "b-source", page.input_value("#src-cluster")
            bed.shot(page, "wizard-source")
            press(page, "#source-next")
            page.wait_for_selector("#mig-host")
            check_labels(page, "wizard: host", labelled)
            assert page.input_value("#mig-host") == "console-host"
            press(page, "#host-next")
            press(page, "#validate")
            page.wait_for_selector("#validation-result .badge", timeout=WAIT * 1000)
            result = page.text_content("#validation-result").strip()
            checks = page.eval_on_selector_all("tr[data-check]", "(rows) => rows.map((r) => r.innerText)")
            log(f"validation {result}: {len(checks)} checks")
            assert result == "SUCCESS", (result, checks)
            assert checks and all(re.search(r"\b(PASS|WARN|INFO)\b", c) for c in checks), checks
            bed.shot(page, "validate")
            press(page, "#validate-next")
            page.wait_for_selector("#review")
            review = page.text_content("#review")
            for want in ("org1", "shop", "b-source", "a-target", "console-host"):
                assert want in review, (want, review)
            bed.shot(page, "review")
            press(page, "#start")
            page.wait_for_selector("#lag-timer")
            mig = page.url.rsplit("/", 1)[1]
            log(f"live migration {mig} started from the console")
            check_labels(page, "progress", labelled)
            st, m, _ = bed.rest("GET", f"{g}/liveMigrations/{mig}")
            assert st == 200 and m["source"]["clusterName"] == "b-source", m

            # the lag timer shows the lag while streaming; Prepare to Cutover turns green
            lags, before = [], []

            def ready():
                # phase, lag, readyForCutover (as the server says) and the button, at one moment
                phase, lag, green = page.evaluate(
                    "() => [document.getElementById('phase').textContent,"
                    " document.getElementById('lag-timer').dataset.seconds,"
                    " (b => !b.disabled && b.classList.contains('ready'))(document.getElementById('prepare'))]")
                if lag:
                    lags.append(float(lag))
                if phase and not green:
                    before.append(phase)
                return green
            until_strict("Prepare to Cutover to turn green", ready, WAIT, 0.25)
            assert lags, "the lag timer never showed a lag"
            assert before, "Prepare to Cutover was never seen grey before it turned green"
            st, m, _ = bed.rest("GET", f"{g}/liveMigrations/{mig}")
            assert m["readyForCutover"], m
            log(f"lag timer readings {lags}; Prepare to Cutover grey during {sorted(set(before))}, then green")
            assert page.eval_on_selector("#prepare", "(b) => getComputedStyle(b).backgroundColor") == "rgb(19, 115, 51)"
            assert page.eval_on_selector_all("#collections progress", "(p) => p.length") > 0
            bed.shot(page, "prepare-green")

            # ---- 4. the cutover page: stop writes, the gap reaches zero, Cut Over ----
            press(page, "#prepare")
            page.wait_for_selector("#optime-gap")
            check_labels(page, "cutover", labelled)
            assert page.input_value("#target-uri") == bed.servers["dst"]["LM_TB_URI"]
            until("the time left to cut over", lambda: page.get_attribute("#window-left", "data-seconds"), 10)
            bed.shot(page, "cutover-page")
            open(stop_file, "w").close()
            bed.procs["writer"].wait(timeout=60)
            gaps = []

            def at_zero():
                # the gap shown and the button, read at one moment of the page
                shown, enabled = page.evaluate(
                    "() => [document.getElementById('optime-gap').textContent,"
                    " !document.getElementById('cutover').disabled]")
                if shown not in ("", "-"):
                    gaps.append(shown)
                if enabled and shown != "0 s":
                    raise Failure(f"Cut Over enabled while the optime gap shows {shown!r}")
                return shown == "0 s" and enabled
            until_strict("the optime gap to reach zero and Cut Over to be enabled", at_zero, WAIT)
            log(f"optime gap readings after the writer stopped: {gaps}")
            bed.shot(page, "gap-zero")
            press(page, "#cutover")
            until("COMPLETE", lambda: "COMPLETE" in page.text_content("#status"), WAIT)
            bed.shot(page, "complete")
            src, dst = bed.servers["src"], bed.servers["dst"]
            r = subprocess.run([PY, os.path.join(TOP, "scripts", "lm_check.py"), "--source", src["LM_TB_URI"],
                                "--source-user", src["LM_TB_USER"], "--source-password-file",
                                src["LM_TB_PASSWORD_FILE"], "--target", dst["LM_TB_URI"]],
                               capture_output=True, text=True, timeout=300)
            log(f"lm_check: {r.stdout.strip()[:300]}")
            if r.returncode != 0 or " 0 differences" not in r.stdout:
                raise Failure(f"the target differs from the source: {r.stdout}{r.stderr}")

            # ---- 5. a second migration: Extend, then Cancel ----
            st, m2, _ = bed.rest("POST", f"{g}/liveMigrations", {
                "source": {"clusterName": "b-source", "groupId": bed.gid},
                "destination": {"clusterName": "c-target", "groupId": bed.gid},
                "migrationHosts": ["console-host"], "dropDestinationData": False})
            assert st == 200, (st, m2)
            mig2 = m2["_id"]
            page.goto(f"{bed.url}/console/#/project/{bed.gid}/migration/{mig2}")
            until("the second migration to be ready", lambda: page.eval_on_selector(
                "#prepare", "(b) => !b.disabled"), WAIT)
            press(page, "#prepare")
            left0 = float(until("the window", lambda: page.get_attribute("#window-left", "data-seconds"), 10))
            assert left0 <= WINDOW_SECONDS, left0
            page.wait_for_selector("[data-banner=window-closing]", timeout=10000)  # under an hour left
            press(page, "#extend")
            until("the extended window", lambda: float(page.get_attribute("#window-left", "data-seconds") or 0) > left0 + 86000, 10)
            page.wait_for_selector("[data-banner=window-closing]", state="detached", timeout=10000)
            st, m, _ = bed.rest("GET", f"{g}/liveMigrations/{mig2}")
            assert m["cutoverWindowEndMs"] / 1000 - time.time() > 86400 + left0 - 60, m
            log(f"extended: time left {left0:.0f} s -> {page.get_attribute('#window-left', 'data-seconds')} s")
            bed.shot(page, "extended")
            press(page, "#cancel")
            page.wait_for_selector("#confirm[open]")
            text = page.text_content("#confirm-text")
            assert "stays" in text, text
            bed.shot(page, "cancel-confirm")
            tab_to(page, "#confirm-yes")
            page.keyboard.press("Enter")
            until("CANCELLED", lambda: "CANCELLED" in page.text_content("#status"), 30)
            st, m, _ = bed.rest("GET", f"{g}/liveMigrations/{mig2}")
            assert m["status"] == "CANCELLED", m
            count = subprocess.run([PY, "-c", "import sys,pymongo; c=pymongo.MongoClient(sys.argv[1]);"
                                    "print(sum(c[d][n].estimated_document_count() for d in c.list_database_names()"
                                    " if d not in ('admin','local','config','__livemig') for n in c[d].list_collection_names()))",
                                    bed.servers["dst2"]["LM_TB_URI"]], capture_output=True, text=True, timeout=60)
            assert count.returncode == 0 and int(count.stdout) > 0, count
            log(f"cancelled; the second target keeps its {count.stdout.strip()} documents")
            bed.shot(page, "cancelled")

            # ---- 5a. a migration that fails (its target holds the namespaces already): the
            # progress page shows the agent's error as a banner ----
            st, m3, _ = bed.rest("POST", f"{g}/liveMigrations", {
                "source": {"clusterName": "b-source", "groupId": bed.gid},
                "destination": {"clusterName": "a-target", "groupId": bed.gid},
                "migrationHosts": ["console-host"]})
            assert st == 200, (st, m3)
            page.goto(f"{bed.url}/console/#/project/{bed.gid}/migration/{m3['_id']}")
            until("the migration to fail", lambda: bed.rest("GET", f"{g}/liveMigrations/{m3['_id']}")[1]["status"] == "FAILED", WAIT)
            until("the page to show FAILED", lambda: "FAILED" in page.text_content("#status"), 10)
            st, m, _ = bed.rest("GET", f"{g}/liveMigrations/{m3['_id']}")
            banner = page.text_content("[data-banner=last-error]")
            assert m["errorMessage"] and m["errorMessage"] in banner, (m, banner)
            log(f"a failed migration: banner {banner[:160]!r}")
            bed.shot(page, "failed-banner")

            # ---- 5b. the wizard with connection details to a source that is down: the
            # source is registered (password kept by the server, never shown), Validate
            # FAILS naming the check and what to fix, and the wizard goes no further ----
            page.goto(f"{bed.url}/console/#/project/{bed.gid}/wizard")
            page.wait_for_selector("#target-cluster")
            page.select_option("#target-cluster", "c-target")
            press(page, "#ready")
            page.wait_for_selector("#kind-det")
            page.check("#kind-det")
            down = free_port()
            page.fill("#src-name", "z-down")
            page.fill("#src-uri", f"mongodb://127.0.0.1:{down}/?directConnection=true&serverSelectionTimeoutMS=2000")
            page.fill("#src-user", "app")
            page.fill("#src-password", "down-secret-1")
            bed.secrets.append("down-secret-1")
            press(page, "#source-next")
            page.wait_for_selector("#mig-host")
            st, cl, _ = bed.rest("GET", f"{g}/clusters")
            z = [c for c in cl["results"] if c["name"] == "z-down"]
            assert z and z[0]["username"] == "app" and "down-secret-1" not in json.dumps(cl), cl
            press(page, "#host-next")
            press(page, "#validate")
            page.wait_for_selector("#validation-result .badge", timeout=WAIT * 1000)
            assert page.text_content("#validation-result").strip() == "FAILED"
            row = page.text_content("tr[data-check=source-reachable]")
            assert "FAIL" in row and str(down) in row, row
            assert page.eval_on_selector("#validate-next", "(b) => b.disabled")
            log(f"a source that is down: validation FAILED, shown as {row.strip()[:160]!r}")
            bed.shot(page, "validate-failed")

            # ---- 7. CSRF (the Owner's own session) ----
            csrf = page.evaluate("fetch('/console/api/session').then((r) => r.json()).then((j) => j.csrfToken)")
            bed.secrets.append(csrf)
            for label, token_sent in (("no token", None), ("a wrong token", "0" * 64)):
                r = fetch(page, "POST", "/api/atlas/v2/groups", token_sent, {"name": "forged", "orgId": "org1"})
                assert r == {"status": 403, "code": "CSRF_TOKEN_INVALID"}, (label, r)
            cookie = f"__Host-lm_session={ck['value']}"
            st, p, _ = bed.rest("PUT", f"{g}/liveMigrations/{mig}/cutover", cookie=cookie)
            assert st == 403 and p["errorCode"] == "CSRF_TOKEN_INVALID", (st, p)
            st, p, _ = bed.rest("POST", "/api/atlas/v2/groups", {"name": "forged2", "orgId": "org1"}, cookie=cookie,
                                headers={"X-CSRF-Token": csrf[::-1]})
            assert st == 403, (st, p)
            st, p, _ = bed.rest("GET", "/api/atlas/v2/orgs/org1/groups")
            assert [x["name"] for x in p["results"]] == ["shop"], p  # nothing was made
            r = fetch(page, "POST", "/api/atlas/v2/groups", csrf, {"name": "made", "orgId": "org1"})
            assert r["status"] == 201, r  # the right token: accepted
            log("CSRF: refused without and with a wrong token (403), accepted with the session's")
            # the server answers no plain HTTP: a cookie never travels in clear
            conn = http.client.HTTPConnection("127.0.0.1", bed.cp_port, timeout=5)
            try:
                conn.request("GET", "/console/api/session", headers={"Cookie": cookie})
                resp = conn.getresponse()
                raise Failure(f"plain HTTP was answered: {resp.status}")
            except (http.client.HTTPException, OSError):
                pass
            finally:
                conn.close()

            # ---- 6. an Organization Member ----
            mctx, mpage = bed.new_page(browser)
            mpage.goto(bed.url + "/console/")
            mpage.fill("#publicKey", bed.member_pub)
            mpage.fill("#privateKey", bed.member_priv)
            mpage.click("#signin-submit")
            mpage.wait_for_selector("#readonly")
            mpage.goto(f"{bed.url}/console/#/project/{bed.gid}")
            mpage.wait_for_selector("tr[data-migration]")
            assert changes_enabled(mpage) == [], changes_enabled(mpage)
            bed.shot(mpage, "member-readonly")
            mpage.goto(f"{bed.url}/console/#/project/{bed.gid}/migration/{mig2}/cutover")
            mpage.wait_for_selector("#cutover")
            until("the cutover page's status", lambda: "CANCELLED" in mpage.text_content("#status"), 10)
            assert changes_enabled(mpage) == [], changes_enabled(mpage)
            mcsrf = mpage.evaluate("fetch('/console/api/session').then((r) => r.json()).then((j) => j.csrfToken)")
            for method, path, body in (("POST", f"{g}/liveMigrations/{mig}/extend", None),
                                       ("POST", "/api/atlas/v2/orgs/org1/liveMigrations/linkTokens", {}),
                                       ("DELETE", "/api/atlas/v2/orgs/org1/liveMigrations/linkTokens", None)):
                r = fetch(mpage, method, path, mcsrf, body)
                assert r == {"status": 403, "code": "USER_UNAUTHORIZED"}, (method, path, r)
            log("member: every change control disabled; forged changes refused 403")
            mctx.close()

            # ---- 8. sign-out, then idle expiry ----
            press(page, "#signout")
            page.wait_for_selector("#signin")
            st, p, _ = bed.rest("GET", f"{g}/liveMigrations", cookie=cookie)
            assert st == 401, (st, p)
            r = fetch(page, "GET", f"{g}/liveMigrations")
            assert r["status"] == 401, r
            log("signed out: the old cookie is refused (401)")
            ctx.close()
            ictx, ipage = bed.new_page(browser)
            ipage.goto(bed.url + "/console/")
            ipage.fill("#publicKey", bed.pub)
            ipage.fill("#privateKey", bed.priv)
            ipage.click("#signin-submit")
            ipage.wait_for_selector("#projects")  # a page that does not poll
            icookie = [c for c in ictx.cookies() if c["name"] == "__Host-lm_session"][0]["value"]
            bed.secrets.append(icookie)
            time.sleep(IDLE_SECONDS + 1.5)
            st, p, _ = bed.rest("GET", f"{g}/liveMigrations", cookie=f"__Host-lm_session={icookie}")
            assert st == 401 and p["errorCode"] == "SESSION_EXPIRED", (st, p)
            ipage.reload()
            ipage.wait_for_selector("#signin")
            log(f"idle expiry: refused after {IDLE_SECONDS} s without a request (SESSION_EXPIRED)")
            ictx.close()
            # a session whose API key is deleted ends with it
            st, k, _ = bed.rest("POST", "/api/atlas/v2/orgs/org1/apiKeys", {"desc": "short", "roles": ["ORG_OWNER"]})
            assert st == 201, (st, k)
            bed.secrets.append(k["privateKey"])
            st, who, hdrs = bed.rest("POST", "/console/api/session", {"publicKey": k["publicKey"], "privateKey": k["privateKey"]},
                                     cookie="")
            assert st == 201, (st, who)
            kcookie = hdrs["Set-Cookie"].split(";")[0]
            bed.secrets.append(kcookie.split("=", 1)[1])
            assert bed.rest("GET", f"{g}/liveMigrations", cookie=kcookie)[0] == 200
            assert bed.rest("DELETE", f"/api/atlas/v2/orgs/org1/apiKeys/{k['publicKey']}")[0] == 204
            st, p, _ = bed.rest("GET", f"{g}/liveMigrations", cookie=kcookie)
            assert st == 401, (st, p)
            # sign-in only takes JSON: a cross-site form (text/plain) cannot sign a browser in
            req = urllib.request.Request(bed.url + "/console/api/session", method="POST",
                                         data=json.dumps({"publicKey": bed.pub, "privateKey": bed.priv}).encode(),
                                         headers={"Content-Type": "text/plain"})
            try:
                urllib.request.urlopen(req, context=bed.ctx, timeout=20)
                raise Failure("a text/plain sign-in was accepted")
            except urllib.error.HTTPError as e:
                assert e.code == 415 and "Set-Cookie" not in e.headers, (e.code, dict(e.headers))
            # nobody unauthenticated makes the server read a large body: 413 / 411 at once
            # (the headers only: the answer comes before the body, which is never read)
            for name, value, want in (("Content-Length", "5002", 413), ("Transfer-Encoding", "chunked", 411)):
                conn = http.client.HTTPSConnection("127.0.0.1", bed.cp_port, context=bed.ctx, timeout=20)
                conn.putrequest("POST", "/console/api/session")
                conn.putheader("Content-Type", "application/json")
                conn.putheader(name, value)
                conn.endheaders()
                got = conn.getresponse().status
                conn.close()
                assert got == want, (name, got)
            log("a deleted key's session is refused; a text/plain sign-in is refused (415); "
                "a sign-in body over 4 KiB 413, without a length 411")
        finally:
            browser.close()

    # ---- 9. labels, CSP, secrets ----
    log(f"every input labelled on: {', '.join(labelled)}")
    if bed.csp_violations:
        raise Failure(f"Content-Security-Policy violations: {bed.csp_violations}")
    for name in ("cp.log", "agent.log"):
        text = bed.slurp(name)
        for s in bed.secrets:
            if s and s in text:
                raise Failure(f"a secret ({len(s)} characters) is in {name}")
    audit = [line for line in bed.slurp("cp.log").splitlines() if "route=/console/api/session" in line]
    assert any(f"key={bed.pub}" in line and "status=201" in line for line in audit), audit
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
    bed = Bed(a.build_dir, a.keep)
    ok = False
    t0 = time.monotonic()
    try:
        run(bed)
        ok = True
        log(f"passed in {time.monotonic() - t0:.0f} s; screenshots in {bed.shots}")
    except (Failure, AssertionError) as e:
        log(f"FAILED: {type(e).__name__}: {e}")
        for name in ("cp.log", "agent.log", "writer.log"):
            log(f"--- last lines of {name} ---\n" + "\n".join(bed.slurp(name).splitlines()[-25:]))
    finally:
        bed.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
