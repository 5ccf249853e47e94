// The dashboard page: loads the session, follows /api/events (server-sent events) and
// keeps the chart, the table, "now", the session and the open experiment up to date.
// Every string from the journal, an LLM or a log is put in the page with textContent.
"use strict";

const state = {
  tag: null,
  session: null,
  rows: new Map(), // id → row
  sort: { key: "id", dir: -1 },
  limit: 300,
  selected: null,
  firstPaint: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function getJSON(url) {
  const res = await fetch(url, { cache: "no-store" });
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

const q = (tag) => (tag ? `tag=${encodeURIComponent(tag)}` : "");

function duration(s) {
  if (s === null || s === undefined) return "—";
  if (s < 90) return `${s.toFixed(0)}s`;
  if (s < 5400) return `${(s / 60).toFixed(1)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

function since(iso) {
  const t = Date.parse(iso);
  return isNaN(t) ? null : Math.max(0, (Date.now() - t) / 1000);
}

const chart = new ProgressChart($("chart"), $("tooltip"), (id) => openExperiment(id));
window.__chart = chart;

// ---- sessions and the session panel ----

async function loadSessions() {
  const list = await getJSON("/api/sessions");
  const sel = $("session-select");
  sel.textContent = "";
  const wanted = new URLSearchParams(location.search).get("tag") || list.default;
  for (const s of list.sessions) {
    const o = el("option", { value: s.tag, text: `${s.tag} · ${s.experiments} experiments · ${s.started_at.slice(0, 16).replace("T", " ")}` });
    if (s.tag === wanted) o.selected = true;
    sel.append(o);
  }
  state.tag = wanted || (list.sessions[0] && list.sessions[0].tag) || null;
}

$("session-select").addEventListener("change", (e) => {
  const u = new URL(location.href);
  u.searchParams.set("tag", e.target.value);
  location.href = u.toString();
});

let sessionTimer = null;
function refreshSession() {
  if (sessionTimer) return;
  sessionTimer = setTimeout(async () => {
    sessionTimer = null;
    try { await loadSession(); } catch (e) { /* the next change retries */ }
  }, 400);
}

async function loadSession() {
  if (!state.tag) return;
  state.session = await getJSON(`/api/session?${q(state.tag)}`);
  renderSession();
  renderCards();
  chart.set(rowsArray(), state.session);
}

function renderSession() {
  const s = state.session, box = $("session");
  box.textContent = "";
  box.append(el("h2", { text: "Session" }));
  const st = $("session-state");
  st.textContent = s.running ? "running" : "finished";
  st.className = s.running ? "pill running" : "pill";
  const dl = el("dl", { class: "facts" });
  const fact = (k, v) => dl.append(el("dt", { text: k }), el("dd", { text: v === null || v === undefined ? "—" : String(v) }));
  fact("tag", s.tag);
  fact("branch", s.branch);
  fact("from", `${s.base_branch} @ ${s.base_commit.slice(0, 10)}`);
  fact("started", s.started_at);
  fact("metric", `${s.metric} (${s.direction})`);
  fact("budget", s.budget_s != null ? duration(s.budget_s) : null);
  fact("platform", s.platform);
  fact("editable", s.editable ? s.editable.join(", ") : null);
  fact("noise σ̂", s.noise ? `${fmt(s.noise.sigma)} (from ${s.noise.measurements} repeated runs)` : "not measured yet (needs repeated runs)");
  fact("counts", Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(", ") || "none");
  box.append(dl);
  const cfg = el("details", {}, el("summary", { text: "config" }), el("pre", { class: "wrap", text: s.config || "(none recorded)" }));
  box.append(cfg);
}

function renderCards() {
  const s = state.session, box = $("cards");
  box.textContent = "";
  const card = (label, value, cls) => box.append(el("div", { class: "card" }, el("div", { class: "label", text: label }), el("div", { class: `value ${cls || ""}`, text: value })));
  const rows = rowsArray();
  const count = (st) => rows.filter((r) => r.status === st).length;
  card("best", fmt(s.best), "good");
  card("baseline", fmt(s.baseline));
  if (s.best != null && s.baseline != null && s.baseline !== 0) {
    const rel = ((s.best - s.baseline) / Math.abs(s.baseline)) * 100;
    card("vs baseline", `${rel >= 0 ? "+" : ""}${rel.toFixed(2)}%`, "good");
  }
  card("experiments", String(rows.length));
  card("kept", String(Math.max(0, count("keep") - 1)));
  // A pruned run is a discard stopped early (results.tsv says `discard` too).
  card("discarded", String(count("discard") + count("pruned")));
  if (count("pruned") > 0) card("pruned early", String(count("pruned")));
  card("crashed", String(count("crash")));
  card("running", String(count("running")));
  card("noise σ̂", s.noise ? fmt(s.noise.sigma) : "—");
  $("chart-title").textContent = `Progress · ${s.metric} (${s.direction === "maximize" ? "higher" : "lower"} is better)`;
}

// ---- the experiments ----

function rowsArray() {
  return Array.from(state.rows.values()).sort((a, b) => a.id - b.id);
}

function merge(rows) {
  for (const r of rows) state.rows.set(r.id, r);
  updateFilters();
  chart.set(rowsArray(), state.session);
  renderTable();
  renderNow();
  if (state.session) renderCards();
  if (state.selected !== null && rows.some((r) => r.id === state.selected)) openExperiment(state.selected, true);
}

function updateFilters() {
  const fill = (id, values) => {
    const sel = $(id), keep = sel.value;
    const have = new Set(Array.from(sel.options).map((o) => o.value));
    for (const v of values) if (!have.has(v)) sel.append(el("option", { value: v, text: v }));
    sel.value = keep;
  };
  const rows = Array.from(state.rows.values());
  fill("f-status", [...new Set(rows.map((r) => r.status))].sort());
  fill("f-category", [...new Set(rows.map((r) => r.category))].sort());
  fill("f-worker", [...new Set(rows.filter((r) => r.worker != null).map((r) => String(r.worker)))].sort((a, b) => a - b));
}

function filtered() {
  const st = $("f-status").value, cat = $("f-category").value, wk = $("f-worker").value;
  const text = $("search").value.trim().toLowerCase();
  const { key, dir } = state.sort;
  return Array.from(state.rows.values())
    .filter((r) => (!st || r.status === st) && (!cat || r.category === cat) && (!wk || String(r.worker) === wk))
    .filter((r) => !text || r.description.toLowerCase().includes(text))
    .sort((a, b) => {
      const x = a[key], y = b[key];
      if (x === y) return a.id - b.id;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
}

function renderTable() {
  const rows = filtered();
  const body = $("experiments").tBodies[0];
  const frag = document.createDocumentFragment();
  for (const r of rows.slice(0, state.limit)) {
    const tr = el("tr", { "data-id": String(r.id) },
      el("td", { class: "num", text: String(r.id) }),
      el("td", { class: "num", text: `${r.iteration}${r.attempt > 1 ? `.${r.attempt}` : ""}` }),
      el("td", {}, el("span", { class: `status ${r.status}`, text: r.status })),
      el("td", { class: "num", text: fmt(r.metric) }),
      el("td", { class: "desc", text: r.description }),
      el("td", { text: r.category }),
      el("td", { class: "num", text: r.worker != null ? String(r.worker) : "" }),
      el("td", { class: "num", text: duration(r.duration_s) }));
    if (r.id === state.selected) tr.classList.add("selected");
    frag.append(tr);
  }
  body.textContent = "";
  body.append(frag);
  $("shown").textContent = rows.length === state.rows.size ? `(${rows.length})` : `(${rows.length} of ${state.rows.size})`;
  $("more").hidden = rows.length <= state.limit;
  for (const th of $("experiments").tHead.rows[0].cells) {
    th.classList.toggle("sorted-asc", th.dataset.key === state.sort.key && state.sort.dir > 0);
    th.classList.toggle("sorted-desc", th.dataset.key === state.sort.key && state.sort.dir < 0);
  }
}

$("experiments").tBodies[0].addEventListener("click", (e) => {
  const tr = e.target.closest("tr");
  if (tr) openExperiment(Number(tr.dataset.id));
});
$("experiments").tHead.addEventListener("click", (e) => {
  const th = e.target.closest("th");
  if (!th) return;
  const key = th.dataset.key;
  state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === "id" ? -1 : 1 };
  renderTable();
});
for (const id of ["f-status", "f-category", "f-worker"]) $(id).addEventListener("change", () => { state.limit = 300; renderTable(); });
$("search").addEventListener("input", () => { state.limit = 300; renderTable(); });
$("more").addEventListener("click", () => { state.limit += 1000; renderTable(); });

function renderNow() {
  const running = Array.from(state.rows.values()).filter((r) => r.status === "running");
  $("now").hidden = running.length === 0;
  const ul = $("now-list");
  ul.textContent = "";
  for (const r of running) {
    const who = r.worker != null ? `worker ${r.worker}` : "running";
    const s = since(r.started_at);
    ul.append(el("li", { "data-started": r.started_at }, el("strong", { text: `${who}: ` }), `#${r.id} (iteration ${r.iteration}) ${r.description}`, el("span", { class: "muted elapsed", text: s !== null ? ` · ${duration(s)}` : "" })));
  }
}
setInterval(() => {
  for (const li of $("now-list").children) {
    const s = since(li.dataset.started);
    const span = li.querySelector(".elapsed");
    if (span && s !== null) span.textContent = ` · ${duration(s)}`;
  }
}, 1000);

// ---- one experiment ----

async function openExperiment(id, quiet) {
  state.selected = id;
  for (const tr of $("experiments").tBodies[0].rows) tr.classList.toggle("selected", Number(tr.dataset.id) === id);
  let x;
  try {
    x = await getJSON(`/api/experiment/${id}`);
  } catch (e) {
    if (!quiet) { const box = $("detail"); box.textContent = ""; box.append(el("h2", { text: "Experiment" }), el("p", { class: "muted", text: e.message })); }
    return;
  }
  if (state.selected !== id) return;
  renderDetail(x);
}

function table(head, rows) {
  const t = el("table", { class: "mini" });
  t.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))));
  const b = el("tbody");
  for (const r of rows) b.append(el("tr", {}, ...r.map((c) => el("td", { text: c === null || c === undefined ? "—" : String(c) }))));
  t.append(b);
  return t;
}

function renderDiff(text) {
  const pre = el("pre", { class: "diff", id: "diff" });
  for (const line of text.split("\n")) {
    let cls = "ctx";
    if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") || line.startsWith("index ")) cls = "meta";
    else if (line.startsWith("@@")) cls = "hunk";
    else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    pre.append(el("span", { class: cls, text: line || " " }));
  }
  return pre;
}

function renderDetail(x) {
  const box = $("detail");
  box.textContent = "";
  box.dataset.id = String(x.id);
  box.append(el("h2", { text: `Experiment #${x.id}` }));
  box.append(el("div", { class: "detail-title" }, el("span", { class: `status ${x.status}`, text: x.status }), " ", el("span", { id: "detail-description", text: x.description })));
  const dl = el("dl", { class: "facts" });
  const fact = (k, v) => dl.append(el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : document.createTextNode(v === null || v === undefined ? "—" : String(v))));
  fact(x.metric_name, fmt(x.metric));
  if (state.session && state.session.baseline != null && x.metric != null) fact("vs baseline", `${(x.metric - state.session.baseline >= 0 ? "+" : "")}${fmt(x.metric - state.session.baseline)}`);
  fact("iteration", `${x.iteration}${x.attempt > 1 ? ` (attempt ${x.attempt})` : ""}`);
  fact("category", x.category);
  fact("proposer", x.proposer);
  fact("commit", x.commit ? x.commit.slice(0, 12) : "none");
  if (x.parent_id) fact("parent", el("button", { class: "link", type: "button", text: `#${x.parent_id} (${x.parent.slice(0, 12)})`, onclick: () => openExperiment(x.parent_id) }));
  else fact("parent", x.parent ? x.parent.slice(0, 12) : null);
  fact("worker", x.worker);
  fact("started", x.started_at);
  fact("finished", x.finished_at);
  fact("duration", duration(x.duration_s));
  fact("memory", x.memory_gb != null ? `${x.memory_gb.toFixed(1)} GB` : null);
  const c = x.cost || {};
  if (c.usd != null || c.tokens_in != null || c.tokens_out != null) {
    fact("LLM cost", `${c.usd != null ? `$${c.usd.toFixed(4)}` : "—"} · ${c.tokens_in ?? "—"} tokens in · ${c.tokens_out ?? "—"} out`);
  }
  box.append(dl);
  box.append(el("h3", { text: "Decision" }), el("pre", { class: "wrap", id: "reason", text: x.reason || "(no reason recorded)" }));
  if (x.runs.length) {
    box.append(el("h3", { text: `Evidence: ${x.runs.length} run${x.runs.length > 1 ? "s" : ""}` }));
    box.append(table(["seed", "value", "worker", "device", "host", "time"], x.runs.map((r) => [r.seed, fmt(r.value), r.worker, r.device, r.host, duration(r.duration_s)])));
  }
  const metrics = Object.entries(x.metrics || {});
  if (metrics.length) {
    box.append(el("h3", { text: "Metrics" }));
    box.append(table(["name", "value"], metrics.map(([k, v]) => [k, typeof v === "number" ? fmt(v) : JSON.stringify(v)])));
  }
  box.append(el("h3", { text: "Diff against its parent" }));
  box.append(x.diff ? renderDiff(x.diff) : el("p", { class: "muted", text: x.commit ? "git has no diff for this commit" : "never committed" }));
  box.append(el("h3", { text: x.log ? `Log tail · ${x.log.path}` : "Log" }));
  if (!x.log) box.append(el("p", { class: "muted", text: "no log recorded" }));
  else if (x.log.error) box.append(el("p", { class: "muted", text: x.log.error }));
  else {
    const pre = el("pre", { id: "log", text: x.log.text });
    box.append(pre);
    pre.scrollTop = pre.scrollHeight;
  }
}

// ---- live updates ----

function connect() {
  const live = $("live");
  const es = new EventSource(`/api/events?${q(state.tag)}`);
  es.addEventListener("open", () => { live.textContent = "live"; live.className = "live on"; });
  es.addEventListener("error", () => {
    live.textContent = "reconnecting…";
    live.className = "live off";
    // The browser gives up on a refused stream (the session does not exist yet): retry.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  });
  es.addEventListener("waiting", () => { live.textContent = "waiting for the session…"; live.className = "live on"; });
  es.addEventListener("snapshot", async (e) => {
    const d = JSON.parse(e.data);
    if (state.tag !== d.tag) { state.tag = d.tag; state.session = null; }
    if (!state.session) { try { await loadSession(); } catch (err) { /* shown below */ } }
    state.rows = new Map(d.experiments.map((r) => [r.id, r]));
    merge([]);
    if (!state.firstPaint) {
      state.firstPaint = true;
      requestAnimationFrame(() => requestAnimationFrame(() => {
        window.__firstPaintMs = performance.now();
        document.documentElement.dataset.ready = "1";
      }));
    }
  });
  es.addEventListener("experiments", (e) => {
    merge(JSON.parse(e.data).experiments);
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  });
  es.addEventListener("session", refreshSession);
  es.addEventListener("sessions", () => loadSessions().catch(() => {}));
}

(async function start() {
  try {
    await loadSessions();
  } catch (e) {
    $("live").textContent = e.message;
  }
  if (!state.tag) {
    $("detail").append(el("p", { class: "muted", text: "No session yet: this page fills in when one starts." }));
  } else {
    try { await loadSession(); } catch (e) { $("live").textContent = e.message; }
  }
  connect();
})();
