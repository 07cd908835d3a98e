// Conveyor's dashboard: a small page over the admin API, with no build step. Views are picked by the URL's
// fragment (#/jobs/42); the token comes from the fragment once (#/?token=…) or the login form, and is kept in
// sessionStorage, never sent anywhere but the API's Authorization header.
"use strict";

const API = document.querySelector('meta[name="conveyor-api"]').content;
const main = document.querySelector("main");
let refreshTimer = null;

function token() { return sessionStorage.getItem("conveyor-token") || ""; }

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const response = await fetch(API + path, {
    ...options,
    headers: { Authorization: "Bearer " + token(), "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (response.status === 401) throw new Unauthorized();
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || {};
    throw new Error((error.code || response.status) + ": " + (error.message || "request failed"));
  }
  return body;
}

function relative(iso) {
  if (!iso) return "";
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const magnitude = Math.abs(seconds);
  let text;
  if (magnitude < 1) return "now";
  if (magnitude < 120) text = Math.round(magnitude) + " s";
  else if (magnitude < 7200) text = Math.round(magnitude / 60) + " min";
  else if (magnitude < 172800) text = Math.round(magnitude / 3600) + " h";
  else text = Math.round(magnitude / 86400) + " days";
  return seconds > 0 ? "in " + text : text + " ago";
}

function time(iso) {
  if (!iso) return '<span class="muted">—</span>';
  const absolute = new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  return `<span class="time" title="${esc(iso)}">${esc(relative(iso))}<span class="abs">${esc(absolute)}</span></span>`;
}

function badge(state) { return `<span class="badge ${esc(state)}">${esc(state)}</span>`; }

function sparkline(values) {
  const width = 240, height = 36, max = Math.max(1, ...values);
  const step = width / Math.max(1, values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  return `<svg class="spark" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" aria-label="completions per minute">
    <polyline fill="none" stroke="#3559e0" stroke-width="2" points="${points.join(" ")}"/></svg>`;
}

function params() {
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  return { path, query: new URLSearchParams(query || "") };
}

function setNav(active) {
  for (const link of document.querySelectorAll("header nav a")) {
    link.classList.toggle("active", link.dataset.view === active);
  }
}

function done() { document.body.dataset.loaded = location.hash || "#/"; }

function every(milliseconds, load) {
  clearInterval(refreshTimer);
  refreshTimer = setInterval(() => { if (!document.querySelector("dialog[open]")) load().catch(() => {}); }, milliseconds);
}

// MARK: Views

/// A queue's figure from /metrics, with "+" when its count stopped at the cap.
const figure = (q, key) => `${q[key]}${q.capped.includes(key) ? "+" : ""}`;

async function overview() {
  setNav("overview");
  const load = async () => {
    const [metrics, dlq] = await Promise.all([api("/metrics"), api("/dlq?limit=5")]);
    const queues = metrics.queues;
    const sum = (key) => queues.reduce((total, q) => total + q[key], 0);
    // A count stops at 1,000 (see QueueInfo.countLimit): a total with a capped part is a lower bound.
    const total = (key) => `${sum(key)}${queues.some((q) => q.capped.includes(key)) ? "+" : ""}`;
    main.innerHTML = `
      <h1>Overview</h1>
      <div class="panel totals">
        <div><div class="n">${total("available")}</div><div class="muted">available</div></div>
        <div><div class="n">${total("running")}</div><div class="muted">running</div></div>
        <div><div class="n">${total("waiting")}</div><div class="muted">scheduled or retrying</div></div>
        <div><div class="n">${sum("completed_per_second").toFixed(1)}</div><div class="muted">jobs/s (last minute)</div></div>
        <div><div class="n">${total("dead_lettered")}</div><div class="muted">dead-lettered</div></div>
        <div><div class="n">${metrics.workers}</div><div class="muted">live workers</div></div>
      </div>
      <h2>Queues</h2>
      <div class="cards">${queues.map((q) => `
        <div class="card" data-queue="${esc(q.queue)}">
          <div class="title"><a href="#/jobs?queue=${encodeURIComponent(q.queue)}">${esc(q.queue)}</a>
            ${q.paused ? badge("paused") : ""}</div>
          <div class="figures">
            <div class="figure"><div class="n">${figure(q, "available")}</div><div class="l">available</div></div>
            <div class="figure"><div class="n">${figure(q, "running")}</div><div class="l">running</div></div>
            <div class="figure"><div class="n">${q.completed_per_second.toFixed(1)}</div><div class="l">jobs/s</div></div>
            <div class="figure"><div class="n">${figure(q, "dead_lettered")}</div><div class="l">dead</div></div>
          </div>
          <div class="small muted">success ${(q.success_rate * 100).toFixed(1)} % · retries ${(q.retry_rate * 100).toFixed(1)} %
            ${q.start_latency_ms ? ` · start p95 ${q.start_latency_ms.p95.toFixed(1)} ms` : ""}</div>
          ${sparkline(q.completed_per_minute)}
        </div>`).join("") || '<p class="muted">No queue has jobs yet.</p>'}
      </div>
      <h2>Dead letters</h2>
      <div class="panel">${dlq.reasons.map((r) => `<a href="#/dlq?reason=${esc(r.reason)}">${esc(r.reason)}</a> ${r.count}`).join(" · ") || '<span class="muted">none</span>'}
      </div>
      ${jobTable(dlq.jobs)}`;
    done();
  };
  await load();
  every(1000, load);
}

function jobTable(jobs) {
  if (!jobs.length) return '<p class="muted">No jobs match.</p>';
  return `<table class="jobs"><thead><tr><th>ID</th><th>State</th><th>Queue</th><th>Kind</th><th>Attempt</th>
    <th>Created</th><th>Reason / last error</th></tr></thead><tbody>${jobs.map((job) => `
    <tr data-job="${job.id}"><td><a href="#/jobs/${job.id}">${job.id}</a></td><td>${badge(job.state)}</td>
      <td>${esc(job.queue)}</td><td>${esc(job.kind)}</td><td>${job.attempt}/${job.max_attempts}</td>
      <td>${time(job.created_at)}</td><td class="small">${esc(job.dead_reason || "")} ${esc((job.last_error || "").slice(0, 120))}</td>
    </tr>`).join("")}</tbody></table>`;
}

function filterForm(query, fields) {
  return `<form class="filters">${fields.map(([name, label, options]) => options
    ? `<label>${label}<select name="${name}"><option value="">any</option>${options.map((o) => `<option ${query.get(name) === o ? "selected" : ""}>${o}</option>`).join("")}</select></label>`
    : `<label>${label}<input name="${name}" value="${esc(query.get(name) || "")}"></label>`).join("")}
    <button class="primary">Filter</button></form>`;
}

function bindFilters(base) {
  const form = main.querySelector("form.filters");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) query.set(key, value);
    location.hash = base + (query.toString() ? "?" + query : "");
  });
}

const STATES = ["scheduled", "available", "running", "retryable", "completed", "cancelled", "discarded"];

async function jobs(query) {
  setNav("jobs");
  const load = async () => {
    const page = await api("/jobs?" + query.toString());
    main.innerHTML = `<h1>Jobs</h1>${filterForm(query, [["state", "State", STATES], ["queue", "Queue"], ["kind", "Kind"], ["namespace", "Namespace"], ["tag", "Tag"]])}
      ${jobTable(page.jobs)}
      ${page.next_cursor ? `<p><a href="#/jobs?${new URLSearchParams({ ...Object.fromEntries(query), cursor: page.next_cursor })}">Older jobs →</a></p>` : ""}`;
    bindFilters("/jobs");
    done();
  };
  await load();
  every(5000, load);
}

async function job(id) {
  setNav("jobs");
  const load = async () => {
    const [record, explain, timeline] = await Promise.all([
      api(`/jobs/${id}`), api(`/jobs/${id}/explain`), api(`/jobs/${id}/timeline`),
    ]);
    main.innerHTML = `
      <h1>Job ${record.id} ${badge(record.state)}</h1>
      <div class="panel explain"><div class="sentence">${esc(explain.sentence)}</div>
        ${explain.suggested_action ? `<div class="action">Suggested: ${esc(explain.suggested_action)}</div>` : ""}
        <div class="facts">${Object.entries(explain.facts).sort().map(([k, v]) => `<div>${esc(k)}</div><div>${esc(v)}</div>`).join("")}</div>
      </div>
      <div class="actions">
        ${["scheduled", "available", "running", "retryable"].includes(record.state) ? '<button data-action="cancel">Cancel</button>' : ""}
        ${["discarded", "cancelled"].includes(record.state) ? '<button class="primary" data-action="retry">Retry</button>' : ""}
        ${["completed", "discarded", "cancelled"].includes(record.state) ? '<button data-action="replay">Replay</button>' : ""}
      </div>
      <h2>Timeline</h2>
      <ul class="timeline panel">${timeline.entries.map((e) => `<li data-kind="${esc(e.kind)}"><div>${time(e.at)}</div>
        <div>${esc(e.summary)}${e.error ? `<div class="error">${esc(e.error)}</div>` : ""}</div></li>`).join("")}</ul>
      <h2>Details</h2>
      <div class="panel"><div class="facts">
        <div>kind</div><div>${esc(record.kind)}</div><div>queue</div><div>${esc(record.queue)}</div>
        <div>namespace</div><div>${esc(record.namespace)}</div><div>attempt</div><div>${record.attempt} of ${record.max_attempts}</div>
        <div>created</div><div>${time(record.created_at)}</div><div>run at</div><div>${time(record.run_at)}</div>
        <div>finished</div><div>${time(record.finished_at)}</div><div>tags</div><div>${esc(record.tags.join(", "))}</div>
        ${record.replay_of ? `<div>replay of</div><div><a href="#/jobs/${record.replay_of}">job ${record.replay_of}</a></div>` : ""}
      </div><h2>Arguments</h2><pre>${esc(JSON.stringify(record.args, null, 2))}</pre></div>`;
    for (const button of main.querySelectorAll("button[data-action]")) {
      button.addEventListener("click", async () => {
        const action = button.dataset.action;
        if (!confirm(`${action} job ${id}?`)) return;
        try {
          const result = await api(`/jobs/${id}/${action}`, { method: "POST" });
          if (action === "replay") location.hash = `#/jobs/${result.id}`; else await load();
        } catch (error) { alert(error.message); }
      });
    }
    done();
  };
  await load();
  every(5000, load);
}

async function deadLetters(query) {
  setNav("dlq");
  const load = async () => {
    const page = await api("/dlq?" + query.toString());
    main.innerHTML = `<h1>Dead letters</h1>
      <div class="panel">${page.reasons.map((r) => `<a href="#/dlq?reason=${esc(r.reason)}" class="reason">${esc(r.reason)}</a> <b>${r.count}</b>`).join(" · ") || '<span class="muted">The dead-letter queue is empty.</span>'}</div>
      ${filterForm(query, [["queue", "Queue"], ["kind", "Kind"], ["namespace", "Namespace"]])}
      <div class="actions"><button class="primary" data-bulk="retry">Retry matching…</button>
        <button class="danger" data-bulk="discard">Discard matching…</button></div>
      ${jobTable(page.jobs)}`;
    bindFilters("/dlq");
    for (const button of main.querySelectorAll("button[data-bulk]")) {
      button.addEventListener("click", async () => {
        const action = button.dataset.bulk;
        const filter = Object.fromEntries(query);
        try {
          const dry = await api(`/dlq/${action}`, { method: "POST", body: JSON.stringify({ ...filter, dry_run: true }) });
          if (!confirm(`${action} ${dry.matched} dead-lettered job(s)?`)) return;
          const result = await api(`/dlq/${action}`, { method: "POST", body: JSON.stringify(filter) });
          alert(`${action}: ${result.matched} job(s)`);
          await load();
        } catch (error) { alert(error.message); }
      });
    }
    done();
  };
  await load();
  every(5000, load);
}

async function queues() {
  setNav("queues");
  const load = async () => {
    const metrics = await api("/metrics");
    main.innerHTML = `<h1>Queues</h1><table class="queues"><thead><tr><th>Queue</th><th>State</th><th>Available</th>
      <th>Scheduled / retrying</th><th>Running</th><th>Dead</th><th>Jobs/s</th><th>Failed/s</th><th>Start p95</th><th></th></tr></thead>
      <tbody>${metrics.queues.map((q) => `<tr data-queue="${esc(q.queue)}"><td><a href="#/jobs?queue=${encodeURIComponent(q.queue)}">${esc(q.queue)}</a></td>
        <td>${q.paused ? badge("paused") : badge("running")}</td><td>${figure(q, "available")}</td><td>${figure(q, "waiting")}</td><td>${figure(q, "running")}</td>
        <td>${figure(q, "dead_lettered")}</td><td>${q.completed_per_second.toFixed(2)}</td><td>${q.failed_per_second.toFixed(2)}</td>
        <td>${q.start_latency_ms ? q.start_latency_ms.p95.toFixed(1) + " ms" : "—"}</td>
        <td><button data-queue="${esc(q.queue)}" data-pause="${q.paused ? "resume" : "pause"}">${q.paused ? "Resume" : "Pause"}</button></td></tr>`).join("")}
      </tbody></table>`;
    for (const button of main.querySelectorAll("button[data-pause]")) {
      button.addEventListener("click", async () => {
        try {
          await api(`/queues/${encodeURIComponent(button.dataset.queue)}/${button.dataset.pause}`, { method: "POST" });
          await load();
        } catch (error) { alert(error.message); }
      });
    }
    done();
  };
  await load();
  every(5000, load);
}

async function workflows(query) {
  setNav("workflows");
  const load = async () => {
    const page = await api("/workflows?" + query.toString());
    main.innerHTML = `<h1>Workflows</h1>${filterForm(query, [["status", "Status", ["running", "waiting", "completed", "failed", "cancelled"]], ["name", "Workflow"], ["namespace", "Namespace"]])}
      ${page.runs.length ? `<table class="runs"><thead><tr><th>Run</th><th>Workflow</th><th>Status</th><th>Created</th><th>Updated</th><th>Error</th></tr></thead>
      <tbody>${page.runs.map((run) => `<tr data-run="${esc(run.id)}"><td><a href="#/workflows/${encodeURIComponent(run.id)}">${esc(run.id)}</a></td>
        <td>${esc(run.name)}@${run.version}</td><td>${badge(run.status)}</td><td>${time(run.created_at)}</td><td>${time(run.updated_at)}</td>
        <td class="small">${esc(run.error_code || "")}</td></tr>`).join("")}</tbody></table>` : '<p class="muted">No runs match.</p>'}`;
    bindFilters("/workflows");
    done();
  };
  await load();
  every(5000, load);
}

async function workflow(id) {
  setNav("workflows");
  const path = `/workflows/${encodeURIComponent(id)}`;
  const load = async () => {
    const [run, explain] = await Promise.all([api(path), api(path + "/explain")]);
    main.innerHTML = `<h1>Run ${esc(run.id)} ${badge(run.status)}</h1>
      <div class="panel explain"><div class="sentence">${esc(explain.sentence)}</div>
        ${explain.suggested_action ? `<div class="action">Suggested: ${esc(explain.suggested_action)}</div>` : ""}</div>
      <div class="panel"><div class="facts"><div>workflow</div><div>${esc(run.name)} version ${run.version}</div>
        <div>job</div><div><a href="#/jobs/${run.job_id}">${run.job_id}</a></div>
        <div>created</div><div>${time(run.created_at)}</div><div>finished</div><div>${time(run.finished_at)}</div>
        ${run.parent_id ? `<div>parent</div><div><a href="#/workflows/${encodeURIComponent(run.parent_id)}">${esc(run.parent_id)}</a></div>` : ""}
        ${run.forked_from ? `<div>forked from</div><div><a href="#/workflows/${encodeURIComponent(run.forked_from)}">${esc(run.forked_from)}</a> at ${esc(run.forked_at_step)}</div>` : ""}
      </div><h2>Input</h2><pre>${esc(JSON.stringify(run.input, null, 2))}</pre>
      ${run.output !== null ? `<h2>Output</h2><pre>${esc(JSON.stringify(run.output, null, 2))}</pre>` : ""}</div>
      <h2>Steps</h2>
      <table class="steps"><thead><tr><th>#</th><th>Step</th><th>Kind</th><th>Status</th><th>Attempts</th><th>Output</th><th>Started</th><th>Finished</th><th></th></tr></thead>
      <tbody>${run.steps.map((s) => `<tr data-step="${esc(s.name)}"><td>${s.position}</td><td>${esc(s.name)}</td><td>${esc(s.kind)}</td>
        <td>${badge(s.status === "waiting" ? "waiting" : s.status)}</td><td>${s.attempts}</td><td>${s.output_bytes} B</td>
        <td>${time(s.started_at)}</td><td>${time(s.finished_at)}</td>
        <td>${s.status === "waiting" ? "" : `<button data-fork="${esc(s.name)}">Fork from here</button>`}</td></tr>`).join("")}</tbody></table>
      <div class="actions"><button data-run-action="signal">Send a signal…</button><button class="danger" data-run-action="cancel">Cancel</button></div>
      <h2>Events</h2><ul class="timeline panel">${run.events.map((e) => `<li><div>${time(e.at)}</div><div>${esc(e.action)} by ${esc(e.performed_by || "the engine")} ${esc(JSON.stringify(e.details))}</div></li>`).join("") || '<li class="muted">none</li>'}</ul>`;
    main.querySelector('[data-run-action="cancel"]').addEventListener("click", async () => {
      if (!confirm(`Cancel run ${id} and its children?`)) return;
      try { await api(path + "/cancel", { method: "POST" }); await load(); } catch (error) { alert(error.message); }
    });
    main.querySelector('[data-run-action="signal"]').addEventListener("click", async () => {
      const name = prompt("Signal name");
      if (!name) return;
      const payload = prompt("Payload (JSON)", "null");
      try {
        await api(path + "/signal", { method: "POST", body: JSON.stringify({ name, payload: JSON.parse(payload) }) });
        await load();
      } catch (error) { alert(error.message); }
    });
    for (const button of main.querySelectorAll("button[data-fork]")) {
      button.addEventListener("click", async () => {
        if (!confirm(`Fork run ${id} from step ${button.dataset.fork}?`)) return;
        try {
          const fork = await api(path + "/fork", { method: "POST", body: JSON.stringify({ from_step: button.dataset.fork }) });
          location.hash = `#/workflows/${encodeURIComponent(fork.id)}`;
        } catch (error) { alert(error.message); }
      });
    }
    done();
  };
  await load();
  every(5000, load);
}

async function workers() {
  setNav("workers");
  const load = async () => {
    const [page, pools] = await Promise.all([api("/workers"), api("/pools")]);
    const usage = (slots, running) => Object.entries(slots).map(([q, n]) => `${esc(q)}: ${running[q] || 0}/${n}`).join(", ");
    main.innerHTML = `<h1>Workers</h1>${pools.pools.length ? `<h2>Pools</h2><table class="pools"><thead><tr><th>Pool</th><th>State</th><th>Workers</th><th>Running / slots</th><th></th></tr></thead>
      <tbody>${pools.pools.map((p) => `<tr data-pool="${esc(p.name)}"><td>${esc(p.name)}</td>
        <td>${p.paused ? badge("paused") + (p.paused_by ? ` <span class="small muted">by ${esc(p.paused_by)}</span>` : "") : badge("running")}</td>
        <td>${p.workers.length}</td><td>${usage(p.slots, p.running)}</td>
        <td><button data-pool="${esc(p.name)}" data-pause="${p.paused ? "resume" : "pause"}">${p.paused ? "Resume" : "Pause"}</button></td></tr>`).join("")}</tbody></table>` : ""}
      <h2>Processes</h2>${page.workers.length ? `<table class="workers"><thead><tr><th>Worker</th><th>Pool</th><th>Running / slots</th><th>Kinds</th><th>Started</th><th>Last heartbeat</th></tr></thead>
      <tbody>${page.workers.map((w) => `<tr><td>${esc(w.id)}</td><td>${esc(w.pool)}</td><td>${usage(w.queues, w.running)}</td>
        <td class="small">${esc(w.kinds.join(", "))}</td><td>${time(w.started_at)}</td><td>${time(w.heartbeat_at)}</td></tr>`).join("")}</tbody></table>`
      : '<p class="muted">No live worker.</p>'}`;
    for (const button of main.querySelectorAll("button[data-pause]")) {
      button.addEventListener("click", async () => {
        try {
          await api(`/pools/${encodeURIComponent(button.dataset.pool)}/${button.dataset.pause}`, { method: "POST" });
          await load();
        } catch (error) { alert(error.message); }
      });
    }
    done();
  };
  await load();
  every(5000, load);
}

async function schedules() {
  setNav("schedules");
  const load = async () => {
    const page = await api("/schedules");
    main.innerHTML = `<h1>Schedules</h1>${page.schedules.length ? `<table class="schedules"><thead><tr><th>Schedule</th><th>Cron</th><th>Time zone</th>
      <th>Job</th><th>Catch-up</th><th>State</th><th>Next tick</th><th>Latest tick</th><th></th></tr></thead>
      <tbody>${page.schedules.map((s) => `<tr data-schedule="${esc(s.name)}"><td>${esc(s.name)}</td><td><code>${esc(s.cron)}</code></td>
        <td>${esc(s.time_zone)}</td><td>${esc(s.kind)} <span class="muted small">on ${esc(s.queue)}</span></td><td>${esc(s.catch_up)}</td>
        <td>${s.paused ? badge("paused") + (s.paused_by ? ` <span class="small muted">by ${esc(s.paused_by)}</span>` : "") : badge("running")}</td>
        <td>${s.paused ? "—" : time(s.next_tick_at)}</td>
        <td>${s.last_job_id ? `<a href="#/jobs/${s.last_job_id}">${time(s.last_tick_at)}</a>` : "—"}</td>
        <td><button data-schedule="${esc(s.name)}" data-pause="${s.paused ? "resume" : "pause"}">${s.paused ? "Resume" : "Pause"}</button></td></tr>`).join("")}
      </tbody></table>` : '<p class="muted">No schedule. Define one with client.schedules.define or conveyor schedules define.</p>'}`;
    for (const button of main.querySelectorAll("button[data-pause]")) {
      button.addEventListener("click", async () => {
        try {
          await api(`/schedules/${encodeURIComponent(button.dataset.schedule)}/${button.dataset.pause}`, { method: "POST" });
          await load();
        } catch (error) { alert(error.message); }
      });
    }
    done();
  };
  await load();
  every(5000, load);
}

function login(message) {
  clearInterval(refreshTimer);
  main.innerHTML = `<div class="panel login"><h1>Sign in</h1>
    <p class="muted">${esc(message || "Paste an API token (CONVEYOR_API_TOKEN, or the one conveyor serve printed).")}</p>
    <form><input type="password" name="token" placeholder="token" autocomplete="off"><button class="primary">Sign in</button></form></div>`;
  main.querySelector("form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("conveyor-token", new FormData(event.target).get("token"));
    route();
  });
  document.body.dataset.loaded = "login";
}

async function route() {
  const { path, query } = params();
  if (query.has("token")) {
    sessionStorage.setItem("conveyor-token", query.get("token"));
    query.delete("token");
    history.replaceState(null, "", "#" + path + (query.toString() ? "?" + query : ""));
  }
  if (!token()) return login();
  const parts = path.split("/").filter(Boolean);
  try {
    if (parts[0] === "jobs" && /^\d+$/.test(parts[1] || "")) await job(parts[1]);
    else if (parts[0] === "jobs") await jobs(query);
    else if (parts[0] === "dlq") await deadLetters(query);
    else if (parts[0] === "queues") await queues();
    else if (parts[0] === "workflows" && parts[1]) await workflow(decodeURIComponent(parts[1]));
    else if (parts[0] === "workflows") await workflows(query);
    else if (parts[0] === "workers") await workers();
    else if (parts[0] === "schedules") await schedules();
    else await overview();
    document.querySelector("header .status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    if (error instanceof Unauthorized) return login("That token was refused. Paste a valid one.");
    clearInterval(refreshTimer);
    main.innerHTML = `<div class="error-box">${esc(error.message)}</div>`;
    document.body.dataset.loaded = "error";
  }
}

window.addEventListener("hashchange", route);
route();
