// jukebox serve: the page. Plain JavaScript, no build step, no network beyond this server.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (url) => token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
const $ = (sel) => document.querySelector(sel);

async function api(method, url, body, raw) {
  const headers = {};
  if (token) headers["x-jukebox-token"] = token;
  let payload = undefined;
  if (raw) { payload = body; }
  else if (body !== undefined) { headers["content-type"] = "application/json"; payload = JSON.stringify(body); }
  const r = await fetch(url, { method, headers, body: payload });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
  if (!r.ok) throw new Error((data && data.error) || r.statusText);
  return data;
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

const LEVEL = ["bottom", "middle", "top"];
const state = { jobs: [], runs: [], studies: [], doneKey: "" };

function fmtEta(s) {
  if (s === null || s === undefined) return "";
  s = Math.round(s);
  return "ETA " + Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// ---- start form -------------------------------------------------------------------------------
async function loadInfo() {
  const info = await api("GET", "/api/info");
  const model = $("#model");
  model.replaceChildren(...info.models.map((m) => el("option", { value: m }, m)));
  fillPrompts(info.prompts, info.default_prompt);
  await loadLabels();
}

function fillPrompts(prompts, pick) {
  const sel = $("#prompt");
  const keep = pick || sel.value;
  sel.replaceChildren(...prompts.map((p) => el("option", { value: p }, p)));
  if (prompts.includes(keep)) sel.value = keep;
}

async function loadLabels() {
  try {
    const l = await api("GET", "/api/models/" + encodeURIComponent($("#model").value) + "/labels");
    $("#genres").replaceChildren(...l.genres.map((g) => el("option", { value: g })));
    $("#artists").replaceChildren(...l.artists.map((a) => el("option", { value: a })));
  } catch (e) { $("#start-error").textContent = e.message; }
}

function modeChanged() {
  const primed = $("#mode").value === "primed";
  document.querySelectorAll(".primed-only").forEach((n) => { n.style.display = primed ? "" : "none"; });
}

async function upload(ev) {
  const f = ev.target.files[0];
  if (!f) return;
  $("#start-error").textContent = "";
  try {
    const r = await api("POST", "/api/prompts?name=" + encodeURIComponent(f.name.replace(/[^A-Za-z0-9._-]/g, "_")), f, true);
    fillPrompts(await api("GET", "/api/prompts"), r.name);
    if (r.warnings && r.warnings.length) $("#start-error").textContent = r.warnings.join("\n");
  } catch (e) { $("#start-error").textContent = e.message; }
}

const num = (id) => { const v = $(id).value; return v === "" ? null : Number(v); };

async function start(ev) {
  ev.preventDefault();
  $("#start-error").textContent = "";
  const mode = $("#mode").value;
  const body = {
    model: $("#model").value, mode, seconds: num("#seconds"),
    genre: $("#genre").value, artist: $("#artist").value,
    takes: num("#takes"), seed: num("#seed"), temperature: num("#temperature"),
    top_k: num("#top_k"), top_p: num("#top_p"), levels: $("#levels").value,
  };
  if (mode === "primed") { body.prompt = $("#prompt").value; body.prompt_seconds = num("#prompt_seconds"); }
  try { await api("POST", "/api/jobs/sample", body); }
  catch (e) { $("#start-error").textContent = e.message; }
}

// ---- jobs -------------------------------------------------------------------------------------
function renderJobs() {
  const ul = $("#jobs");
  if (!state.jobs.length) { ul.replaceChildren(el("li", { class: "muted" }, "No jobs yet.")); return; }
  ul.replaceChildren(...state.jobs.map((j) => {
    const p = j.progress;
    const bits = [];
    if (p && j.status === "running") bits.push(`${LEVEL[p.level] || "level " + p.level}: window ${Math.min(p.window + 1, p.windows)}/${p.windows}, ${p.tokens}/${p.tokens_total} tokens `, fmtEta(j.eta_s));
    return el("li", { dataset: { job: j.id, status: j.status, target: j.target } },
      el("div", {}, el("span", { class: "status " + j.status }, j.status), " ", j.title, " ",
        el("span", { class: "muted" }, j.target)),
      j.status === "running" ? el("progress", { max: p ? Math.max(p.tokens_total, 1) : 1, value: p ? p.tokens : 0 }) : null,
      bits.length ? el("div", { class: "muted" }, bits.join("")) : null,
      j.error ? el("div", { class: "error" }, j.error) : null,
      el("div", {},
        (j.status === "queued" || j.status === "running") ? el("button", { class: "cancel", onclick: () => act("POST", `/api/jobs/${j.id}/cancel`) }, "Cancel") : null,
        ["cancelled", "interrupted", "failed"].includes(j.status) ? el("button", { class: "resume", onclick: () => act("POST", `/api/jobs/${j.id}/resume`) }, "Resume") : null));
  }));
}

async function act(method, url, body) {
  try { await api(method, url, body); await loadRuns(); }
  catch (e) { alert(e.message); }
}

// ---- runs as a tree ---------------------------------------------------------------------------
async function loadRuns() {
  const r = await api("GET", "/api/runs");
  // Re-render only what changed: re-rendering the takes would stop one that is playing.
  const runsText = JSON.stringify(r.runs), studiesText = JSON.stringify(r.studies);
  if (runsText !== state.runsText) { state.runsText = runsText; state.runs = r.runs; renderRuns(); }
  if (studiesText !== state.studiesText) { state.studiesText = studiesText; state.studies = r.studies; renderStudies(); }
}

function takeCard(run, t) {
  const audio = t.levels.map((l) => el("div", {},
    el("div", { class: "level-name" }, `${LEVEL[l]} `,
      el("a", { href: withToken(`/api/runs/${run.name}/audio/${l}/${t.index}?download=1`) }, "WAV")),
    el("audio", { controls: true, preload: "none", class: "player", dataset: { level: l }, src: withToken(`/api/runs/${run.name}/audio/${l}/${t.index}`) }),
    el("img", { loading: "lazy", alt: `spectrogram, ${LEVEL[l]} level`, src: withToken(`/api/runs/${run.name}/spectrogram/${l}/${t.index}`) })));
  const lowest = Math.min(...run.levels);
  const extendSecs = el("input", { type: "number", step: "0.5", min: "0.5", value: "3", class: "extend-seconds", title: "seconds to add", style: "width:4em" });
  const extendTakes = el("input", { type: "number", min: "1", max: "16", value: "2", class: "extend-takes", title: "new takes", style: "width:3.5em" });
  return el("div", { class: "take" + (t.favourite ? " favourite" : ""), dataset: { run: run.name, take: t.index } },
    el("div", {},
      el("button", { class: "star fav", title: "favourite", onclick: () => act("POST", `/api/runs/${run.name}/takes/${t.index}/favourite`, { on: !t.favourite }) }, t.favourite ? "★" : "☆"),
      ` take ${t.index} · seed ${t.seed} · ${t.genres.join("+")} · ${t.artist}`),
    audio.length ? audio : el("div", { class: "muted" }, "no audio yet"),
    el("div", { class: "actions" },
      el("button", { class: "extend", title: "continue this take into new takes", onclick: () => act("POST", `/api/runs/${run.name}/takes/${t.index}/extend`, { seconds: run.seconds + Number(extendSecs.value), takes: Number(extendTakes.value), seed: t.seed + 1000 }) }, "Extend +"),
      extendSecs, "s ×", extendTakes,
      lowest > 0 && t.levels.includes(lowest) ? el("button", { class: "upsample", onclick: () => act("POST", `/api/runs/${run.name}/upsample`, { takes: [t.index] }) }, "Upsample") : null,
      el("a", { href: withToken(`/api/runs/${run.name}/takes/${t.index}/zip`), class: "zip" }, "Download zip")));
}

function runCard(run, children) {
  const prompt = run.mode === "primed" ? `primed on ${run.prompt} (${run.prompt_seconds.toFixed(2)} s)` : "ancestral";
  const parent = run.parent ? ` · extends ${run.parent[0]} take ${run.parent[1]}` : "";
  return el("div", { class: "run", dataset: { run: run.name } },
    el("h3", {}, `${run.name} · ${run.seconds.toFixed(2)} s · ${prompt} · levels ${run.levels.map((l) => LEVEL[l]).join(", ")}${parent}`),
    el("div", { class: "takes" }, run.takes.map((t) => takeCard(run, t))),
    children.length ? el("div", { class: "children" }, children) : null);
}

function renderRuns() {
  const byName = new Map(state.runs.map((r) => [r.name, r]));
  const kids = new Map();
  const roots = [];
  for (const r of state.runs) {
    if (r.parent && byName.has(r.parent[0])) {
      if (!kids.has(r.parent[0])) kids.set(r.parent[0], []);
      kids.get(r.parent[0]).push(r);
    } else roots.push(r);
  }
  const build = (r) => runCard(r, (kids.get(r.name) || []).map(build));
  const box = $("#runs");
  box.replaceChildren(...(roots.length ? roots.map(build) : [el("p", { class: "muted" }, "No takes yet: start some above.")]));
}

function renderStudies() {
  $("#studies").replaceChildren(...state.studies.map((s) => el("li", { dataset: { study: s.name } },
    `${s.name}: ${s.groups_done}/${s.groups} groups `,
    s.report ? el("a", { href: withToken(`/studies/${s.name}/index.html`), target: "_blank" }, "open the report") : el("span", { class: "muted" }, "report when done"))));
}

async function startStudy(ev) {
  ev.preventDefault();
  $("#study-error").textContent = "";
  try {
    await api("POST", "/api/jobs/study", {
      model: $("#model").value, prompt: $("#prompt").value, prompt_seconds: num("#prompt_seconds"),
      seconds: num("#seconds"),
      genres: $("#study-genres").value, artists: $("#study-artists").value, seeds: num("#study-seeds"),
    });
  } catch (e) { $("#study-error").textContent = e.message; }
}

// ---- live updates -----------------------------------------------------------------------------
function listen() {
  const es = new EventSource(withToken("/api/events"));
  es.addEventListener("open", () => { $("#conn").textContent = "connected"; });
  es.addEventListener("error", () => { $("#conn").textContent = "reconnecting…"; });
  es.addEventListener("jobs", (ev) => {
    state.jobs = JSON.parse(ev.data);
    renderJobs();
    // Reload the takes when a job starts or ends (not on every progress tick: re-rendering
    // would stop a take that is playing).
    const key = state.jobs.map((j) => j.id + ":" + j.status).join();
    if (key !== state.doneKey) { state.doneKey = key; loadRuns().catch(() => {}); }
  });
}

// While a study runs, its cells fill in on disk: look every few seconds.
setInterval(() => {
  if (state.jobs.some((j) => j.kind === "study" && j.status === "running")) loadRuns().catch(() => {});
}, 3000);

document.addEventListener("DOMContentLoaded", async () => {
  $("#mode").addEventListener("change", modeChanged);
  $("#model").addEventListener("change", loadLabels);
  $("#upload").addEventListener("change", upload);
  $("#start-form").addEventListener("submit", start);
  $("#study-form").addEventListener("submit", startStudy);
  modeChanged();
  try { await loadInfo(); await loadRuns(); } catch (e) { $("#start-error").textContent = e.message; }
  listen();
});
