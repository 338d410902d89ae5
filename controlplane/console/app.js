/* The livemig web console: plain JavaScript, no framework, served by livemig-controlplane
 * under /console/. It signs in with an API key (POST /console/api/session: the server sets
 * an HttpOnly session cookie and answers a CSRF token), then calls the control plane's own
 * admin API (/api/atlas/v2/...) with that cookie and the token in X-CSRF-Token on every
 * change. The server enforces the key's role: the disabled controls of an Organization
 * Member are a courtesy, not the protection. Pages are built with DOM calls and
 * textContent only (no innerHTML of data). Live pages poll every 2 s while the tab is
 * visible. */
'use strict';

const API = '/api/atlas/v2';
const POLL_MS = 2000;
const state = { me: null, csrf: '', owner: false, poll: null, tick: null, page: null };

/* ---- small tools ---- */

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

/* A labelled input: <label for=id> + the control. */
function field(id, label, control) {
  control.id = id;
  return [h('label', { for: id, text: label }), control];
}

/* A button that changes something: disabled for an Organization Member. */
function changeButton(text, attrs, onclick) {
  const b = h('button', Object.assign({ type: 'button', 'data-change': '1' }, attrs || {}), text);
  b.addEventListener('click', onclick);
  if (!state.owner) {
    b.disabled = true;
    b.title = 'Organization Member: read-only';
  }
  return b;
}

/* Runs rebuild (which replaces rows every poll) and gives the keyboard focus back to the
 * element of the same data-focus-key: a keyboard user keeps their place. */
function keepFocus(rebuild) {
  const a = document.activeElement;
  const key = a && a.dataset ? a.dataset.focusKey : null;
  rebuild();
  if (key) {
    const el = document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (el && el !== document.activeElement) el.focus();
  }
}

/* An input that only feeds a change: disabled for an Organization Member too. */
function changeInput(el) {
  el.setAttribute('data-change', '1');
  if (!state.owner) el.disabled = true;
  return el;
}

function fmtSeconds(s) {
  if (s === null || s === undefined || isNaN(s)) return '-';
  s = Math.max(0, Math.round(s));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n) => String(n).padStart(2, '0');
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

function fmtTime(iso) {
  if (!iso) return 'never';
  const ago = (Date.now() - Date.parse(iso)) / 1000;
  return ago < 120 ? `${Math.max(0, Math.round(ago))} s ago` : new Date(iso).toLocaleString();
}

function badge(text) {
  return h('span', { class: `badge ${text}`, text });
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.errorCode;
  }
}

/* One call to the control plane. Changes carry the CSRF token. A 401 means the session
 * is gone (signed out elsewhere, expired): back to the sign-in page. */
async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = state.csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store',
                                body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  const text = await r.text();
  if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
  if (r.status === 401 && path !== '/console/api/session') {
    state.me = null;
    go('#/signin', data && data.errorCode === 'SESSION_EXPIRED'
      ? 'Your session expired: sign in again.' : 'Signed out: sign in again.');
    throw new ApiError(r.status, data);
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

/* ---- banners ---- */

function banners(list) {
  const box = document.getElementById('banners');
  box.replaceChildren(...list.map((b) =>
    h('div', { class: `banner ${b.kind}`, role: b.kind === 'error' ? 'alert' : 'status',
               'data-banner': b.id || b.kind }, b.text)));
}

function flash(kind, text) {
  banners([{ kind, text }]);
}

/* ---- navigation and polling ---- */

function stopTimers() {
  clearInterval(state.poll);
  clearInterval(state.tick);
  state.poll = state.tick = null;
  state.page = null;
}

/* Runs refresh now and every POLL_MS while the tab is visible. */
function poll(refresh) {
  state.page = refresh;
  const run = async () => {
    if (document.hidden || state.page !== refresh) return;
    try { await refresh(); } catch (e) { if (!(e instanceof ApiError && e.status === 401)) flash('error', e.message); }
  };
  run();
  state.poll = setInterval(run, POLL_MS);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && state.page) state.page().catch(() => {});
});

function go(hash, message) {
  if (location.hash === hash) route(message);
  else { state.pendingMessage = message; location.hash = hash; }
}

function crumbs(...parts) {
  document.getElementById('crumbs').replaceChildren(
    ...parts.map((p) => (p.href ? h('a', { href: p.href, text: p.text }) : h('span', { text: p.text }))));
}

function main(...kids) {
  const m = document.getElementById('main');
  m.replaceChildren(...kids);
  return m;
}

function whoBox() {
  const box = document.getElementById('who');
  if (!state.me) { box.replaceChildren(); return; }
  const role = state.owner ? 'Organization Owner' : 'Organization Member';
  box.replaceChildren(...[
    h('span', { text: `${state.me.publicKey} · ${state.me.orgId} · ${role}` }),
    state.owner ? null : h('span', { class: 'readonly-note', id: 'readonly', text: 'Read-only: Organization Member' }),
    h('button', { type: 'button', id: 'signout', onclick: signOut }, 'Sign out')].filter(Boolean));
}

async function signOut() {
  try { await api('DELETE', '/console/api/session'); } catch (e) { /* gone already */ }
  state.me = null;
  state.csrf = '';
  go('#/signin', 'Signed out.');
}

async function route(message) {
  stopTimers();
  banners(message || state.pendingMessage ? [{ kind: 'info', text: message || state.pendingMessage }] : []);
  state.pendingMessage = null;
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  if (!state.me && parts[0] !== 'signin') {
    try {
      const me = await api('GET', '/console/api/session');
      setMe(me);
    } catch (e) {
      go('#/signin');
      return;
    }
  }
  whoBox();
  try {
    if (parts[0] === 'signin') return pageSignIn();
    if (parts[0] === 'project' && parts[1]) {
      const gid = parts[1];
      if (parts[2] === 'wizard') return await pageWizard(gid);
      if (parts[2] === 'migration' && parts[3] && parts[4] === 'cutover') return await pageCutover(gid, parts[3]);
      if (parts[2] === 'migration' && parts[3]) return await pageProgress(gid, parts[3]);
      return await pageLiveMigration(gid);
    }
    return await pageProjects();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) flash('error', e.message);
  }
}

window.addEventListener('hashchange', () => route());
window.addEventListener('DOMContentLoaded', () => {
  document.getElementById('confirm').addEventListener('close', () => {
    const d = document.getElementById('confirm');
    if (d.resolve) d.resolve(d.returnValue === 'yes');
  });
  route();
});

function setMe(me) {
  state.me = me;
  state.csrf = me.csrfToken;
  state.owner = (me.roles || []).includes('ORG_OWNER');
}

/* A modal confirmation; resolves true on "yes". */
function confirmBox(title, text, yes) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-yes').textContent = yes;
  d.returnValue = '';
  return new Promise((resolve) => { d.resolve = resolve; d.showModal(); document.getElementById('confirm-no').focus(); });
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch (e) {
    button.textContent = 'Select and copy (Ctrl+C)';
  }
}

/* ---- sign-in ---- */

function pageSignIn() {
  crumbs({ text: 'Sign in' });
  whoBox();
  const pub = h('input', { type: 'text', autocomplete: 'username', required: true });
  const priv = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const err = h('p', { class: 'muted', id: 'signin-error', role: 'alert' });
  const form = h('form', { class: 'card', id: 'signin' },
    h('h1', { text: 'Sign in to livemig' }),
    h('p', { class: 'muted', text: 'Use an API key of your organization (livemig-controlplane bootstrap, or an Owner made one). ' +
      'The private part is sent once to this control plane, which keeps only a session.' }),
    h('div', { class: 'grid' }, field('publicKey', 'Public key', pub), field('privateKey', 'Private key', priv)),
    h('p', {}, h('button', { type: 'submit', class: 'primary', id: 'signin-submit' }, 'Sign in')), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const me = await api('POST', '/console/api/session', { publicKey: pub.value.trim(), privateKey: priv.value.trim() });
      priv.value = '';
      setMe(me);
      go('#/projects');
    } catch (e) {
      err.textContent = `Sign-in refused: ${e.message}`;
    }
  });
  main(form);
  pub.focus();
}

/* ---- project picker ---- */

async function pageProjects() {
  crumbs({ text: 'Projects' });
  const list = await api('GET', `${API}/orgs/${state.me.orgId}/groups`);
  const items = list.results.map((p) => h('li', {}, h('a', { href: `#/project/${p.id}`, 'data-project': p.name, text: p.name }),
    h('span', { class: 'muted', text: ` (${p.id})` })));
  main(h('h1', { text: `Projects of ${state.me.orgId}` }),
    h('div', { class: 'card' }, items.length ? h('ul', { id: 'projects' }, items)
      : h('p', { class: 'muted', text: 'No project yet: create one with `livemig projects create`.' })));
}

/* ---- the Live Migration page ---- */

async function pageLiveMigration(gid) {
  crumbs({ href: '#/projects', text: 'Projects' }, { text: 'Live Migration' });
  const org = state.me.orgId;
  const migBody = h('tbody', { id: 'migrations' });
  const hostBody = h('tbody', { id: 'hosts' });
  const tokenOut = h('div', { id: 'token-out' });
  const ips = changeInput(h('input', { type: 'text', placeholder: '10.0.0.5, 10.0.0.6' }));
  const expires = changeInput(h('input', { type: 'text', placeholder: '24h (optional)' }));
  main(
    h('h1', { text: 'Live Migration' }),
    h('div', { class: 'row' },
      changeButton('Migrate data to this project', { class: 'primary', id: 'start-wizard' }, () => go(`#/project/${gid}/wizard`))),
    h('h2', { text: 'Migrations' }),
    h('table', {}, h('thead', {}, h('tr', {}, ['Migration', 'Status', 'Source', 'Target', 'Host', 'Lag'].map((t) => h('th', { scope: 'col', text: t })))), migBody),
    h('h2', { text: 'Migration hosts' }),
    h('table', {}, h('thead', {}, h('tr', {}, ['Host name', 'Version', 'Last heartbeat', 'Free disk', 'Current job'].map((t) => h('th', { scope: 'col', text: t })))), hostBody),
    h('h2', { text: 'Link-token' }),
    h('div', { class: 'card' },
      h('p', { class: 'muted', text: 'A migration host links to this organization with a link-token (shown once). Deleting it unlinks every host linked with it.' }),
      h('div', { class: 'grid' }, field('access-ips', 'Access-list IPs', ips), field('token-expires', 'Expires after', expires)),
      h('p', { class: 'row' },
        changeButton('Generate Link-Token', { class: 'primary', id: 'token-generate' }, async () => {
          try {
            const list = ips.value.split(/[\s,]+/).filter(Boolean);
            const body = { accessListIps: list };
            if (expires.value.trim()) body.expiresAfter = expires.value.trim();
            const t = await api('POST', `${API}/orgs/${org}/liveMigrations/linkTokens`, body);
            const copyBtn = h('button', { type: 'button', id: 'token-copy' }, 'Copy');
            copyBtn.addEventListener('click', () => copy(t.linkToken, copyBtn));
            tokenOut.replaceChildren(h('p', { text: 'The link-token (shown this once; give it to the host: livemig-agent link):' }),
              h('div', { class: 'token', id: 'token-value', text: t.linkToken }),
              h('p', { class: 'row' }, copyBtn,
                h('span', { class: 'muted', text: list.length ? `Access list: ${list.join(', ')}` : 'Access list: any address' })));
            flash('info', 'Link-token generated.');
          } catch (e) { flash('error', e.message); }
        }),
        changeButton('Delete Link-Token', { class: 'danger', id: 'token-delete' }, async () => {
          if (!await confirmBox('Delete the link-token?', 'Every migration host linked with it is unlinked and stops working.', 'Delete')) return;
          try {
            await api('DELETE', `${API}/orgs/${org}/liveMigrations/linkTokens`);
            tokenOut.replaceChildren();
            flash('info', 'Link-token deleted.');
          } catch (e) { flash('error', e.message); }
        })),
      tokenOut));
  poll(async () => {
    const [migs, hosts] = await Promise.all([
      api('GET', `${API}/groups/${gid}/liveMigrations`),
      api('GET', `${API}/orgs/${org}/liveMigrations/agents`)]);
    keepFocus(() => migBody.replaceChildren(...(migs.results.length ? migs.results.map((m) => h('tr', { 'data-migration': m._id },
      h('td', {}, h('a', { href: `#/project/${gid}/migration/${m._id}`, 'data-focus-key': `mig-${m._id}`, text: m._id })),
      h('td', {}, badge(m.status)),
      h('td', { text: m.source ? m.source.clusterName : '-' }),
      h('td', { text: m.destination ? m.destination.clusterName : '-' }),
      h('td', { text: (m.migrationHosts || []).join(', ') }),
      h('td', { text: fmtSeconds(m.lagTimeSeconds) }))) : [h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'No live migration yet.' }))])));
    hostBody.replaceChildren(...(hosts.results.length ? hosts.results.map((a) => h('tr', { 'data-host': a.hostname },
      h('td', { text: a.hostname + (a.revoked ? ' (unlinked)' : '') }),
      h('td', { text: a.version || '-' }),
      h('td', { text: fmtTime(a.lastHeartbeat) }),
      h('td', { text: fmtBytes(a.freeDiskBytes) }),
      h('td', { text: a.runningJobs.length ? a.runningJobs.join(', ') : 'idle' }))) : [h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'No linked host: generate a link-token and link one.' }))]));
  });
}

/* ---- the wizard ---- */

const STEPS = ['Target cluster', 'Source', 'Migration host', 'Validate', 'Review'];

async function pageWizard(gid) {
  crumbs({ href: '#/projects', text: 'Projects' }, { href: `#/project/${gid}`, text: 'Live Migration' }, { text: 'Migrate data' });
  const org = state.me.orgId;
  const w = { gid, step: 0, target: '', sourceKind: 'registered', sourceGroup: gid, sourceCluster: '', host: '', validation: null };
  const [clusters, projects, hosts] = await Promise.all([
    api('GET', `${API}/groups/${gid}/clusters`),
    api('GET', `${API}/orgs/${org}/liveMigrations/availableProjects`),
    api('GET', `${API}/orgs/${org}/liveMigrations/agents`)]);
  const body = h('div', { class: 'card', id: 'wizard' });
  const stepList = h('ol', { class: 'wizard-steps', 'aria-label': 'Steps' });
  main(h('h1', { text: 'Migrate data to this project' }), stepList, body);

  const show = () => {
    stepList.replaceChildren(...STEPS.map((s, i) => h('li', { class: i === w.step ? 'current' : '', 'aria-current': i === w.step ? 'step' : null, text: `${i + 1}. ${s}` })));
    body.replaceChildren(...[stepTarget, stepSource, stepHost, stepValidate, stepReview][w.step]());
    const first = body.querySelector('select, input, button:not([disabled])');
    if (first) first.focus();
  };
  const next = () => { w.step++; show(); };
  const back = () => h('button', { type: 'button', onclick: () => { w.step--; show(); } }, 'Back');

  function stepTarget() {
    const sel = h('select', {}, clusters.results.map((c) => h('option', { value: c.name, text: `${c.name} (${c.connectionString})` })));
    if (w.target) sel.value = w.target;
    const drop = changeInput(h('input', { type: 'checkbox' }));
    drop.checked = !!w.drop;
    return [h('h2', { text: 'Choose the target cluster' }),
      h('p', { class: 'muted', text: 'The cluster of this project the data goes to.' }),
      h('div', { class: 'grid' }, field('target-cluster', 'Target cluster', sel),
        field('drop-target', 'Clear the target\'s copies of the migrated collections first (dropDestinationData)', drop)),
      h('p', {}, changeButton('I\'m ready', { class: 'primary', id: 'ready' }, () => { w.target = sel.value; w.drop = drop.checked; next(); }))];
  }

  function stepSource() {
    const reg = h('input', { type: 'radio', id: 'kind-reg', name: 'srckind', value: 'registered', checked: w.sourceKind === 'registered' });
    const det = h('input', { type: 'radio', id: 'kind-det', name: 'srckind', value: 'details', checked: w.sourceKind === 'details' });
    const proj = h('select', {}, projects.map((p) => h('option', { value: p.id, text: p.name })));
    proj.value = w.sourceGroup;
    const cl = h('select', {});
    const fill = () => {
      const p = projects.find((x) => x.id === proj.value);
      cl.replaceChildren(...(p ? p.deployments : []).map((d) => h('option', { value: d.name, text: d.name })));
      if (w.sourceCluster) cl.value = w.sourceCluster;
    };
    proj.addEventListener('change', fill);
    fill();
    const name = h('input', { type: 'text', placeholder: 'source-cluster' });
    const uri = h('input', { type: 'text', placeholder: 'mongodb://db1.example:27017/?replicaSet=rs0' });
    const user = h('input', { type: 'text', autocomplete: 'off' });
    const pw = h('input', { type: 'password', autocomplete: 'new-password' });
    const tls = h('input', { type: 'checkbox' });
    const ca = h('input', { type: 'text', placeholder: 'source-ca.pem' });
    const regBox = h('fieldset', { id: 'src-registered' }, h('legend', { text: 'Registered cluster' }),
      h('div', { class: 'grid' }, field('src-project', 'Source project', proj), field('src-cluster', 'Source cluster', cl)));
    const detBox = h('fieldset', { id: 'src-details' }, h('legend', { text: 'Connection details' }),
      h('div', { class: 'grid' }, field('src-name', 'Name to register it as', name), field('src-uri', 'Connection string', uri),
        field('src-user', 'User', user), field('src-password', 'Password', pw), field('src-tls', 'TLS', tls),
        field('src-ca', 'CA file on the migration host (its ca_dir)', ca)));
    const toggle = () => { regBox.classList.toggle('hidden', !reg.checked); detBox.classList.toggle('hidden', !det.checked); };
    reg.addEventListener('change', toggle);
    det.addEventListener('change', toggle);
    toggle();
    const err = h('p', { role: 'alert', class: 'muted' });
    return [h('h2', { text: 'The source' }),
      h('div', { class: 'row', role: 'radiogroup', 'aria-label': 'Source kind' }, reg, h('label', { for: 'kind-reg', text: 'A registered cluster' }),
        det, h('label', { for: 'kind-det', text: 'Connection details' })),
      regBox, detBox, err,
      h('p', { class: 'row' }, back(), changeButton('Next', { class: 'primary', id: 'source-next' }, async () => {
        if (reg.checked) {
          if (!cl.value) { err.textContent = 'Choose a source cluster.'; return; }
          w.sourceKind = 'registered';
          w.sourceGroup = proj.value;
          w.sourceCluster = cl.value;
          return next();
        }
        try { /* connection details: registered in this project (password stored encrypted) */
          await api('POST', `${API}/groups/${gid}/clusters`, { name: name.value.trim(), connectionString: uri.value.trim(),
            username: user.value, password: pw.value, tls: tls.checked, caFile: ca.value.trim() });
          pw.value = '';
          w.sourceKind = 'details';
          w.sourceGroup = gid;
          w.sourceCluster = name.value.trim();
          const p = projects.find((x) => x.id === gid);
          if (p) p.deployments.push({ name: w.sourceCluster });
          next();
        } catch (e) { err.textContent = e.message; }
      }))];
  }

  function stepHost() {
    const live = hosts.results.filter((a) => !a.revoked);
    const sel = h('select', {}, live.map((a) => h('option', { value: a.hostname, text: `${a.hostname} (${a.version || '?'}, heartbeat ${fmtTime(a.lastHeartbeat)})` })));
    if (w.host) sel.value = w.host;
    return [h('h2', { text: 'The migration host' }),
      live.length ? h('div', { class: 'grid' }, field('mig-host', 'Migration host', sel))
        : h('p', { class: 'muted', text: 'No linked host: generate a link-token on the Live Migration page and link one.' }),
      h('p', { class: 'row' }, back(), changeButton('Next', { class: 'primary', id: 'host-next', disabled: !live.length }, () => { w.host = sel.value; next(); }))];
  }

  function request() {
    return { source: { clusterName: w.sourceCluster, groupId: w.sourceGroup },
      destination: { clusterName: w.target, groupId: gid, hostnameSchemaType: 'PUBLIC' },
      migrationHosts: [w.host], dropDestinationData: !!w.drop };
  }

  function stepValidate() {
    const out = h('div', { id: 'validation' });
    const nextBtn = h('button', { type: 'button', class: 'primary', id: 'validate-next', disabled: true }, 'Next');
    nextBtn.addEventListener('click', next);
    const run = changeButton('Validate', { class: 'primary', id: 'validate' }, async () => {
      run.disabled = true;
      out.replaceChildren(h('p', { class: 'muted', id: 'validation-status', text: 'Validating: the migration host checks both sides...' }));
      try {
        const v = await api('POST', `${API}/groups/${gid}/liveMigrations/validate`, request());
        const until = Date.now() + 300000;
        let r = v;
        while (r.status === 'PENDING' && Date.now() < until && location.hash.endsWith('/wizard')) {
          await new Promise((ok) => setTimeout(ok, 1000));
          r = await api('GET', `${API}/groups/${gid}/liveMigrations/validate/${v._id}`);
        }
        w.validation = r;
        out.replaceChildren(h('p', {}, 'Result: ', h('span', { id: 'validation-result' }, badge(r.status)), r.errorMessage ? ` ${r.errorMessage}` : ''),
          h('table', {}, h('thead', {}, h('tr', {}, ['Check', 'Result', 'What was found and what to fix'].map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', {}, (r.checks || []).map((c) => h('tr', { 'data-check': c.name }, h('td', { text: c.name }), h('td', {}, badge(c.result)), h('td', { text: c.message }))))));
        nextBtn.disabled = r.status !== 'SUCCESS';
        if (r.status === 'SUCCESS') nextBtn.focus();
      } catch (e) { out.replaceChildren(h('p', { role: 'alert', text: e.message })); }
      run.disabled = !state.owner;
    });
    return [h('h2', { text: 'Validate' }), h('p', { class: 'muted', text: 'The migration host checks the source and the target before anything is copied.' }),
      h('p', { class: 'row' }, back(), run, nextBtn), out];
  }

  function stepReview() {
    const p = projects.find((x) => x.id === w.sourceGroup);
    const err = h('p', { role: 'alert', class: 'muted' });
    return [h('h2', { text: 'Review' }),
      h('dl', { class: 'grid', id: 'review' },
        h('dt', { text: 'Source organization' }), h('dd', { text: org }),
        h('dt', { text: 'Source project' }), h('dd', { text: p ? p.name : w.sourceGroup }),
        h('dt', { text: 'Source cluster' }), h('dd', { text: w.sourceCluster }),
        h('dt', { text: 'Target cluster' }), h('dd', { text: w.target }),
        h('dt', { text: 'Clear the target first' }), h('dd', { text: w.drop ? 'yes: its copies of the migrated collections are dropped' : 'no' }),
        h('dt', { text: 'Migration host' }), h('dd', { text: w.host })),
      err,
      h('p', { class: 'row' }, back(), changeButton('Start the Migration', { class: 'primary', id: 'start' }, async () => {
        try {
          const m = await api('POST', `${API}/groups/${gid}/liveMigrations`, request());
          go(`#/project/${gid}/migration/${m._id}`, 'Live migration started.');
        } catch (e) { err.textContent = e.message; }
      }))];
  }
  show();
}

/* ---- progress ---- */

function migrationBanners(m, rep) {
  const list = [];
  if (m.errorMessage) list.push({ kind: 'error', id: 'last-error', text: `Last error: ${m.errorMessage}` });
  for (const e of (rep && rep.errors) || []) if (e !== m.errorMessage) list.push({ kind: 'error', id: 'agent-error', text: e });
  if (m.status === 'EXPIRED') list.push({ kind: 'error', id: 'window-expired', text: 'The cutover window expired: the migration stopped syncing. Start a new one.' });
  if (m.status === 'CANCELLED') list.push({ kind: 'warning', id: 'cancelled', text: 'Cancelled: syncing stopped; the data copied to the target stays there.' });
  const left = m.cutoverWindowEndMs ? (m.cutoverWindowEndMs - Date.now()) / 1000 : null;
  if (left !== null && left > 0 && left < 3600 && m.status === 'WORKING') list.push({ kind: 'warning', id: 'window-closing', text: `The cutover window closes in ${fmtSeconds(left)}: cut over or extend it.` });
  const bal = m.balancer || (rep && rep.balancer);
  if (bal) for (const [side, s] of Object.entries(bal)) if (/refused/i.test(String(s))) list.push({ kind: 'warning', id: 'balancer', text: `The ${side} balancer was not restarted (${s}): start it by hand (sh.startBalancer()).` });
  for (const ev of (m.events || []).slice(-20)) if (/balancer/i.test(ev.kind + ev.message)) list.push({ kind: 'warning', id: 'balancer', text: ev.message });
  for (const s of m.shards || []) if (s.lastError) list.push({ kind: 'error', id: `shard-${s.name}`, text: `Shard ${s.name}: ${s.lastError}` });
  for (const n of shardNotes) if (n.until > Date.now() && n.migration === m._id) list.push(n);
  banners(list);
}

/* The answers to the per-shard Restart buttons, kept for 20 s: the page's poll rebuilds the
 * banners every 2 s and must not wipe them before they are read. */
const shardNotes = [];

function shardNote(migration, name, kind, text) {
  const i = shardNotes.findIndex((n) => n.id === `shard-restart-${name}`);
  if (i >= 0) shardNotes.splice(i, 1);
  const n = { kind, id: `shard-restart-${name}`, text, migration, until: Date.now() + 20000 };
  shardNotes.push(n);
  const box = document.getElementById('banners');
  box.querySelectorAll(`[data-banner="${CSS.escape(n.id)}"]`).forEach((e) => e.remove());
  box.append(h('div', { class: `banner ${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-banner': n.id }, text));
}

async function pageProgress(gid, id) {
  crumbs({ href: '#/projects', text: 'Projects' }, { href: `#/project/${gid}`, text: 'Live Migration' }, { text: id });
  const phase = h('span', { id: 'phase', class: 'big' });
  const status = h('span', { id: 'status' });
  const lag = h('span', { id: 'lag-timer', class: 'big', 'aria-live': 'off' });
  const docs = h('span', { id: 'docs' });
  const eta = h('span', { id: 'copy-remaining' }, '-');
  let prev = null; /* the last poll's documents copied, for the copy's time remaining */
  const prepare = h('button', { type: 'button', class: 'go', id: 'prepare', disabled: true }, 'Prepare to Cutover');
  prepare.addEventListener('click', () => go(`#/project/${gid}/migration/${id}/cutover`));
  const colls = h('tbody', { id: 'collections' });
  const shardBox = h('div', { id: 'shards' });
  main(h('h1', {}, 'Live migration ', h('code', { text: id }), ' ', status),
    h('div', { class: 'metrics' },
      h('div', { class: 'metric' }, h('div', { class: 'label', text: 'Phase' }), phase),
      h('div', { class: 'metric' }, h('div', { class: 'label', id: 'lag-label', text: 'Lag timer (source ahead of target)' }), lag),
      h('div', { class: 'metric' }, h('div', { class: 'label', text: 'Documents copied' }), docs,
        h('div', { class: 'label', text: 'Copy time remaining' }), eta)),
    h('p', { class: 'row' }, prepare, h('span', { class: 'muted', id: 'prepare-note' })),
    h('h2', { text: 'Collections' }),
    h('table', {}, h('thead', {}, h('tr', {}, ['Namespace', 'Copied', 'Progress'].map((t) => h('th', { scope: 'col', text: t })))), colls),
    shardBox);
  poll(async () => {
    const [m, rep] = await Promise.all([api('GET', `${API}/groups/${gid}/liveMigrations/${id}`),
      api('GET', `${API}/groups/${gid}/liveMigrations/${id}/progress`)]);
    status.replaceChildren(badge(m.status));
    phase.textContent = m.phase;
    lag.textContent = m.lagTimeSeconds === null ? '--:--' : fmtSeconds(m.lagTimeSeconds);
    lag.dataset.seconds = m.lagTimeSeconds === null ? '' : String(m.lagTimeSeconds);
    const p = rep.progress || {};
    docs.textContent = p.docsTotal ? `${p.docsCopied} / ${p.docsTotal}` : String(p.docsCopied || 0);
    /* the copy's time remaining at the rate seen between two polls (the API gives none) */
    const now = Date.now();
    const shards = Array.isArray(m.shards) ? m.shards : [];
    if (shards.length) {
      /* a sharded source: the shards' own counts; copied once every shard is past its copy
       * (a shard that failed mid-copy has not reported its total: the sum alone is shown) */
      docs.textContent = String(shards.reduce((n, s) => n + (s.documentsCopied || 0), 0));
      const copying = shards.filter((s) => s.phase !== 'STREAMING' && s.phase !== 'COMPLETE' && s.phase !== 'CUTTING_OVER');
      const left = copying.map((s) => s.remainingSeconds).filter((x) => typeof x === 'number');
      eta.textContent = !copying.length ? 'copied' : left.length === copying.length ? fmtSeconds(Math.max(...left)) : '-';
    } else if (p.docsTotal && p.docsCopied >= p.docsTotal) eta.textContent = 'copied';
    else if (prev && p.docsTotal && p.docsCopied > prev.c) eta.textContent = fmtSeconds((p.docsTotal - p.docsCopied) / ((p.docsCopied - prev.c) / ((now - prev.t) / 1000)));
    prev = { t: now, c: p.docsCopied || 0 };
    const ready = m.readyForCutover && m.status === 'WORKING';
    prepare.disabled = !ready;
    prepare.classList.toggle('ready', ready);
    document.getElementById('prepare-note').textContent = ready ? 'Ready: the lag is within the cutover lag.'
      : m.status === 'WORKING' ? 'Turns green when the target has caught up (readyForCutover).' : `The migration is ${m.status}.`;
    /* a sharded source reports its progress per shard (the table below), not per collection */
    if (!(rep.collections || []).length && Array.isArray(m.shards) && m.shards.length) {
      colls.replaceChildren(h('tr', {}, h('td', { colspan: 3, class: 'muted', id: 'collections-sharded', text: 'A sharded source: its progress is shown per shard, below.' })));
    } else colls.replaceChildren(...(rep.collections || []).map((c) => {
      const pct = c.docsTotal ? Math.min(100, Math.round((100 * c.docsCopied) / c.docsTotal)) : (c.done ? 100 : 0);
      return h('tr', {}, h('td', { text: c.ns }), h('td', { text: `${c.docsCopied}${c.docsTotal ? ' / ' + c.docsTotal : ''}` }),
        h('td', {}, h('progress', { max: 100, value: pct, 'aria-label': `${c.ns} copied` }), ` ${pct}%${c.done ? ' done' : ''}`));
    }));
    renderShards(shardBox, gid, id, m);
    migrationBanners(m, rep);
  });
}

/* The per-shard table, when the migration reports shards (a sharded source). */
function renderShards(box, gid, id, m) {
  if (!Array.isArray(m.shards) || !m.shards.length) { box.replaceChildren(); return; }
  keepFocus(() => box.replaceChildren(h('h2', { text: 'Shards' }),
    h('table', { id: 'shard-table' }, h('thead', {}, h('tr', {}, ['Shard', 'Target shard', 'Host', 'State', 'Phase', 'Copied', 'Progress', 'Time left', 'Lag', 'Ready', ''].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, m.shards.map((s) => h('tr', { 'data-shard': s.name },
        h('td', { text: s.name }), h('td', { text: s.targetShard || '-' }), h('td', { text: s.migrationHost || '-' }),
        h('td', {}, badge(s.state || '-')), h('td', { text: s.phase || '-' }),
        h('td', { text: `${s.documentsCopied || 0} docs, ${fmtBytes(s.bytesCopied || 0)}` }),
        h('td', {}, h('progress', { max: 100, value: Math.round(s.percentage || 0), 'aria-label': `shard ${s.name} progress` }), ` ${Math.round(s.percentage || 0)}%`),
        h('td', { text: fmtSeconds(s.remainingSeconds) }), h('td', { text: fmtSeconds(s.lagTimeSeconds) }),
        h('td', { text: s.readyForCutover ? 'yes' : 'no' }),
        h('td', {}, changeButton('Restart', { 'aria-label': `Restart shard ${s.name}`, 'data-focus-key': `restart-${s.name}` }, async () => {
          if (!await confirmBox(`Restart shard ${s.name}?`, 'This shard\'s copy starts again from its last checkpoint; the other shards go on.', 'Restart')) return;
          try {
            await api('POST', `${API}/groups/${gid}/liveMigrations/${id}/shards/${encodeURIComponent(s.name)}/restart`);
            shardNote(id, s.name, 'info', `Shard ${s.name}: restart requested; it starts again from its last checkpoint.`);
          } catch (e) {
            /* the server says why (409 SHARD_NOT_FAILED: only a FAILED shard restarts) */
            shardNote(id, s.name, 'error', `Shard ${s.name} was not restarted (${e.status}${e.code ? ' ' + e.code : ''}): ${e.message}`);
          }
        }))))))));
}

/* ---- cutover ---- */

async function pageCutover(gid, id) {
  crumbs({ href: '#/projects', text: 'Projects' }, { href: `#/project/${gid}`, text: 'Live Migration' },
    { href: `#/project/${gid}/migration/${id}`, text: id }, { text: 'Cutover' });
  const first = await api('GET', `${API}/groups/${gid}/liveMigrations/${id}`);
  const clusters = await api('GET', `${API}/groups/${gid}/clusters`);
  const target = clusters.results.find((c) => first.destination && c.name === first.destination.clusterName);
  const uri = target ? target.connectionString : '(the target cluster\'s connection string)';
  const copyBtn = h('button', { type: 'button', id: 'copy-uri' }, 'Copy');
  copyBtn.addEventListener('click', () => copy(uri, copyBtn));
  const gap = h('span', { id: 'optime-gap', class: 'big' });
  const windowLeft = h('span', { id: 'window-left', class: 'big' });
  const status = h('span', { id: 'status' });
  let current = first;
  const cut = changeButton('Cut Over', { class: 'primary', id: 'cutover' }, async () => {
    try {
      await api('PUT', `${API}/groups/${gid}/liveMigrations/${id}/cutover`);
      flash('info', 'Cutover requested: the agent applies what is left and stops.');
    } catch (e) { flash('error', e.message); }
  });
  const extend = changeButton('Extend time', { id: 'extend' }, async () => {
    try {
      const r = await api('POST', `${API}/groups/${gid}/liveMigrations/${id}/extend`);
      current.cutoverWindowEndMs = r.cutoverWindowEndMs;
      flash('info', `Cutover window extended to ${new Date(r.cutoverWindowEndMs).toLocaleString()}.`);
      tick();
    } catch (e) { flash('error', e.message); }
  });
  const cancel = changeButton('Cancel migration', { class: 'danger', id: 'cancel' }, async () => {
    if (!await confirmBox('Cancel this live migration?', 'Syncing stops. The data already copied to the target stays there; nothing is deleted on the source or the target.', 'Cancel the migration')) return;
    try {
      await api('POST', `${API}/groups/${gid}/liveMigrations/${id}/cancel`);
      flash('warning', 'Cancelled: the data stays on the target.');
    } catch (e) { flash('error', e.message); }
  });
  main(h('h1', {}, 'Cutover ', status),
    h('div', { class: 'card' },
      h('div', { class: 'grid' }, h('label', { for: 'target-uri', text: 'Target connection string' }),
        h('div', { class: 'row' }, h('input', { type: 'text', id: 'target-uri', readonly: true, value: uri }), copyBtn))),
    h('div', { class: 'card' }, h('h2', { text: 'Steps' }),
      h('ol', { class: 'steps' },
        h('li', { text: 'Stop your application\'s writes to the source.' }),
        h('li', { text: 'Wait for the optime gap to reach zero: every write on the source is on the target.' }),
        h('li', { text: 'Cut Over, then restart your application on the target connection string.' }))),
    h('div', { class: 'metrics' },
      h('div', { class: 'metric' }, h('div', { class: 'label', text: 'Optime gap' }), gap),
      h('div', { class: 'metric' }, h('div', { class: 'label', text: 'Time left to cut over' }), windowLeft)),
    h('p', { class: 'row' }, cut, extend, cancel, h('span', { class: 'muted', id: 'cutover-note' })));
  const tick = () => {
    const left = current.cutoverWindowEndMs ? (current.cutoverWindowEndMs - Date.now()) / 1000 : null;
    windowLeft.textContent = left === null ? 'not open yet' : fmtSeconds(left);
    windowLeft.dataset.seconds = left === null ? '' : String(Math.round(left));
  };
  state.tick = setInterval(tick, 1000);
  poll(async () => {
    current = await api('GET', `${API}/groups/${gid}/liveMigrations/${id}`);
    status.replaceChildren(badge(current.status));
    /* the gap in whole seconds (the agent reports fractions): Cut Over is enabled once it
     * shows 0 s, that is, less than half a second */
    const g = current.optimeGapSeconds;
    const known = g !== null && g !== undefined;
    gap.textContent = known ? `${Math.round(g)} s` : '-';
    gap.dataset.seconds = known ? String(Math.round(g)) : '';
    const active = current.status === 'WORKING' || current.status === 'NEW';
    const atZero = known && Math.round(g) === 0;
    if (state.owner) {
      cut.disabled = !(active && current.readyForCutover && atZero);
      extend.disabled = !(active && current.cutoverWindowEndMs);
      cancel.disabled = !active;
    }
    document.getElementById('cutover-note').textContent = !active ? `The migration is ${current.status}.`
      : !current.readyForCutover ? 'Not ready for cutover yet.' : atZero ? 'The gap is zero: you can cut over.' : 'Cut Over is enabled when the gap is zero.';
    tick();
    migrationBanners(current, null);
  });
}
