// audiocache web page: plain JS, no build step. The key lives in sessionStorage only and
// goes to the public JSON API as X-API-KEY; every view is a URL (query string).
"use strict";
const $ = (sel) => document.querySelector(sel);
const PAGE = 25;
const state = { key: sessionStorage.getItem("audiocache.key"),
                account: sessionStorage.getItem("audiocache.account") };

function view() { return new URLSearchParams(location.search); }
function go(params, replace) {
  const url = "/ui/?" + params.toString();
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  render();
}

function showError(message) {
  const box = $("#error");
  box.textContent = message; box.hidden = !message;
}

async function api(method, path, options = {}) {
  const headers = Object.assign({ "X-API-KEY": state.key }, options.headers || {});
  let response;
  try {
    response = await fetch(path, { method, headers, body: options.body });
  } catch (err) {
    throw new Error("The server could not be reached: " + err.message);
  }
  if (!response.ok) {
    let text = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body.error_message) text = `${body.error_message} (${body.error_code}, ${response.status})`;
    } catch (_e) { /* not JSON: the status line says enough */ }
    throw new Error(text);
  }
  return options.raw ? response : (response.status === 204 ? null : response.json());
}
function json(body) { return { body: JSON.stringify(body), headers: { "Content-Type": "application/json" } }; }

async function guarded(work) {
  try { showError(""); await work(); } catch (err) { showError(err.message || String(err)); }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

async function render() {
  const signedIn = Boolean(state.key);
  $("#sign-in").hidden = signedIn;
  $("#sign-out").hidden = !signedIn;
  $("#cache").hidden = true; $("#stats").hidden = true; $("#policy-panel").hidden = true;
  $("#history").hidden = true; $("#audit").hidden = true;
  $("#audit-link").hidden = !signedIn;
  $("#whoami").hidden = !signedIn;
  $("#whoami").textContent = signedIn ? `Account ${state.account}` : "";
  $("#agents").replaceChildren();
  if (!signedIn) { $("#key").focus(); return; }
  await guarded(async () => {
    const agents = await api("GET", `/v1/accounts/${encodeURIComponent(state.account)}/agents`);
    const current = view().get("agent") || (agents[0] && agents[0].agentId);
    if (view().get("view") === "audit") { await renderAudit(); }
    for (const agent of agents) {
      const params = new URLSearchParams({ agent: agent.agentId });
      const link = el("a", { href: "/ui/?" + params, text: agent.agentName || agent.agentId });
      if (agent.agentId === current) link.setAttribute("aria-current", "page");
      link.addEventListener("click", (e) => { e.preventDefault(); go(params); });
      $("#agents").append(link);
    }
    if (view().get("view") === "audit") { /* the audit view alone */ }
    else if (current) {
      await renderCache(current);
      await renderStats(current);
      await renderPolicy(current);
    }
  });
}

function listQuery(params) {
  const query = new URLSearchParams({ limit: PAGE, offset: params.get("offset") || 0 });
  if (params.get("sort")) query.set("sort", params.get("sort"));
  const filters = [];
  if (params.get("q")) filters.push(`transcript:contains:${params.get("q")}`);
  if (params.get("provider")) filters.push(`provider:eq:${params.get("provider")}`);
  if (params.get("voice")) filters.push(`voice:eq:${params.get("voice")}`);
  if (params.get("language")) filters.push(`language:eq:${params.get("language")}`);
  if (params.get("flag")) filters.push(`${params.get("flag")}:eq:true`);
  for (const f of filters) query.append("filter", f);
  return query;
}

let currentAgent = null;
async function renderCache(agent) {
  currentAgent = agent;
  if (reportAgent !== agent) report("");  // another agent's report would mislead
  const params = view();
  const base = `/v1/agents/${encodeURIComponent(agent)}/audio-cache`;
  const list = await api("GET", `${base}?${listQuery(params)}`);
  $("#cache").hidden = false;
  $("#cache-title").textContent = `Audio cache of ${agent}`;
  for (const name of ["q", "provider", "voice", "language", "flag"]) {
    $("#filters").elements[name].value = params.get(name) || "";
  }
  const [sortField, sortDir] = (params.get("sort") || ":").split(":");
  for (const button of document.querySelectorAll("th button.sort")) {
    const th = button.parentElement;
    th.setAttribute("aria-sort", button.dataset.field === sortField
      ? (sortDir === "asc" ? "ascending" : "descending") : "none");
  }
  const offset = Number(params.get("offset") || 0);
  $("#total").textContent = `${list.totalCount} entries`;
  $("#page").textContent = list.totalCount
    ? `${offset + 1}–${Math.min(offset + PAGE, list.totalCount)} of ${list.totalCount}` : "";
  $("#prev").disabled = offset === 0;
  $("#next").disabled = offset + PAGE >= list.totalCount;
  $("#rows").replaceChildren(...list.entries.map((entry) => row(base, entry)));
}

const POLICY_NUMBERS = ["minHits", "maxEntries", "maxBytes", "ttlSeconds"];
let policy = null;
async function renderStats(agent) {
  const stats = await api("GET", `/v1/agents/${encodeURIComponent(agent)}/audio-cache/stats`);
  const ratio = (r) => (r === null ? "–" : `${(r * 100).toFixed(1)} %`);
  const items = [
    ["Entries", stats.entries], ["Bytes", stats.bytes], ["Pinned", stats.pinned],
    ["Hit ratio (hour / day / 30 days)",
     ["hour", "day", "month"].map((w) => ratio(stats.windows[w].hitRatio)).join(" / ")],
    ["Characters saved", stats.charactersSaved],
    ["Synthesis seconds saved", stats.synthesisSecondsSaved.toFixed(1)],
    ["Money saved", `${stats.moneySaved.total.toFixed(2)} ${stats.moneySaved.currency}`],
    ["Evicted", stats.evictedTotal], ["Personal phrases skipped", stats.privacySkipped],
    ["Top phrases", stats.topPhrases.map((p) => `${p.transcript} (${p.hitCount})`).join("; ") || "–"],
  ];
  $("#stats-list").replaceChildren(...items.flatMap(([k, v]) =>
    [el("dt", { text: k }), el("dd", { text: String(v) })]));
  $("#stats").hidden = false;
}
async function renderPolicy(agent) {
  policy = await api("GET", `/v1/agents/${encodeURIComponent(agent)}/cache-policy`);
  const form = $("#policy");
  form.elements.admission.value = policy.admission;
  for (const name of POLICY_NUMBERS) form.elements[name].value = policy[name] ?? "";
  form.elements.eviction.value = policy.eviction || "";
  form.elements.personalData.value = policy.personalData;
  $("#policy-panel").hidden = false;
}
$("#policy").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    const form = e.target;
    const body = Object.assign({}, policy, { admission: form.elements.admission.value,
      eviction: form.elements.eviction.value || null, personalData: form.elements.personalData.value });
    for (const name of POLICY_NUMBERS) {
      body[name] = form.elements[name].value === "" ? null : Number(form.elements[name].value);
    }
    delete body.usage; delete body.evictedTotal;
    policy = await api("PUT", `/v1/agents/${encodeURIComponent(currentAgent)}/cache-policy`, json(body));
    $("#policy-saved").textContent = "Policy saved.";
  });
});

function row(base, entry) {
  const url = `${base}/${entry.id}`;
  const transcript = el("td", {}, el("span", { text: entry.transcript }));
  if (entry.regenerated) transcript.append(el("span", { class: "badge", text: "Regenerated" }));
  if (entry.imported) transcript.append(el("span", { class: "badge", text: "Uploaded" }));
  if (entry.pinned) transcript.append(el("span", { class: "badge", text: "Pinned" }));
  const voice = el("td", { title: `${entry.provider} / ${entry.providerVoiceId} / ${entry.languageCode}`,
                           text: entry.providerVoiceId });
  const label = (what) => `${what} “${entry.transcript}”`;
  const action = (text, work) => el("button", { type: "button", "aria-label": label(text), text,
    onclick: () => guarded(async () => { await work(); await render(); }) });
  const actions = el("td", {},
    el("button", { type: "button", "aria-label": label("Play"), text: "Play",
      onclick: () => guarded(() => play(url, "wav")) }),
    el("button", { type: "button", "aria-label": label("Play 8 kHz"), text: "Play 8 kHz",
      onclick: () => guarded(() => play(url, "wav_8000")) }),
    el("button", { type: "button", "aria-label": label("Download"), text: "Download",
      onclick: () => guarded(() => download(url, entry)) }),
    el("button", { type: "button", "aria-label": label("Edit"), text: "Edit",
      onclick: () => openEdit(url, entry) }),
    el("button", { type: "button", "aria-label": label("Upload replacement"), text: "Upload replacement",
      onclick: () => { uploadTarget = url; $("#upload").click(); } }),
    action("Regenerate", () => api("POST", `${url}/regenerate`)),
    el("button", { type: "button", "aria-label": label("History"), text: "History",
      onclick: () => guarded(() => renderHistory(url, entry)) }),
    entry.pinned ? action("Unpin", () => api("DELETE", `${url}/pin`))
                 : action("Pin", () => api("PUT", `${url}/pin`)),
    action("Delete", async () => {
      if (confirm(`Delete “${entry.transcript}”?`)) await api("DELETE", url);
    }),
  );
  const tr = el("tr", { "data-id": entry.id });
  // A WAV dropped on the row replaces the entry's audio.
  tr.addEventListener("dragover", (e) => e.preventDefault());
  tr.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer.files[0];
    if (file) guarded(async () => { await replaceWith(url, file); await render(); });
  });
  tr.append(
    el("td", {}, el("input", { type: "checkbox", class: "pick", value: entry.id,
                               "aria-label": label("Select") })),
    transcript, voice,
    el("td", { text: `${entry.duration.toFixed(2)} s` }),
    el("td", { text: String(entry.hitCount) }),
    el("td", { text: new Date(entry.cachedAt).toLocaleString() }),
    el("td", { text: entry.lastHitAt ? new Date(entry.lastHitAt).toLocaleString() : "never" }),
    actions);
  return tr;
}

// Take history (GET …/history; play a take; restore it): the shape agreed in SHAPES.md.
async function renderHistory(url, entry) {
  const { takes } = await api("GET", `${url}/history`);
  $("#history-title").textContent = `History of “${entry.transcript}”`;
  $("#takes").replaceChildren(...(takes.length ? takes.map((take) => el("li", {},
    el("span", { text: `${new Date(take.createdAt).toLocaleString()} · ${take.reason} · ` +
                       `${take.duration.toFixed(2)} s · ${take.transcript} ` }),
    el("button", { type: "button", text: "Play take", "aria-label": `Play take of ${take.createdAt}`,
      onclick: () => guarded(async () => {
        const r = await api("GET", `${url}/history/${take.id}/file`, { raw: true });
        $("#player").src = URL.createObjectURL(await r.blob()); await $("#player").play().catch(() => {});
      }) }),
    el("button", { type: "button", text: "Restore", "aria-label": `Restore take of ${take.createdAt}`,
      onclick: () => guarded(async () => {
        await api("POST", `${url}/history/${take.id}/restore`); await render();
      }) }))) : [el("li", { text: "No earlier takes." })]));
  $("#history").hidden = false;
  $("#history").scrollIntoView();
}

// The audit log (GET /v1/accounts/{accountId}/audit-log): filters and page are the URL.
// From/To are the browser's local time, sent as UTC.
const AUDIT_FILTERS = ["operation", "from", "to"];
function utc(local) { return new Date(local).toISOString(); }
async function renderAudit() {
  const params = view();
  const offset = Number(params.get("offset") || 0);
  const query = new URLSearchParams({ limit: PAGE, offset });
  if (params.get("operation")) query.set("operation", params.get("operation"));
  for (const name of ["from", "to"]) if (params.get(name)) query.set(name, utc(params.get(name)));
  const form = $("#audit-filters");
  for (const name of AUDIT_FILTERS) form.elements[name].value = params.get(name) || "";
  const log = await api("GET", `/v1/accounts/${encodeURIComponent(state.account)}/audit-log?${query}`);
  $("#audit-title").textContent = `Audit log (${log.totalCount} events)`;
  $("#audit-page").textContent = log.totalCount
    ? `${offset + 1}–${Math.min(offset + PAGE, log.totalCount)} of ${log.totalCount}` : "";
  $("#audit-prev").disabled = offset === 0;
  $("#audit-next").disabled = offset + PAGE >= log.totalCount;
  $("#audit-rows").replaceChildren(...log.events.map((e) => el("tr", {},
    el("td", { text: new Date(e.at).toLocaleString() }), el("td", { text: e.keyId }),
    el("td", { text: e.operation }), el("td", { text: e.agentId || "" }),
    el("td", { text: auditEntries(e) }), el("td", { text: String(e.status) }))));
  $("#audit").hidden = false;
}
// The path's entry, or the entries a bulk delete removed (at most 20, short numeric ids):
// written out in the cell, so a screen reader reads them like any other text.
function auditEntries(e) {
  return e.entryId || (e.entryIds || []).join(", ");
}
$("#audit-link").addEventListener("click", (e) => { e.preventDefault(); go(new URLSearchParams({ view: "audit" })); });
$("#audit-filters").addEventListener("submit", (e) => {
  e.preventDefault();
  const params = new URLSearchParams({ view: "audit" });
  for (const [k, v] of new FormData(e.target)) if (v) params.set(k, v);
  go(params);
});
$("#audit-prev").addEventListener("click", () => {
  const p = view(); p.set("offset", Math.max(0, Number(p.get("offset") || 0) - PAGE)); go(p);
});
$("#audit-next").addEventListener("click", () => {
  const p = view(); p.set("offset", Number(p.get("offset") || 0) + PAGE); go(p);
});

// Export, import and bulk takes (…/audio-cache/export, /import, /takes). The key goes as
// X-API-KEY, never in a URL, so the export is fetched and handed over as a blob download.
let reportAgent = null;
function report(summary, details = []) {
  reportAgent = currentAgent;
  $("#transfer-summary").textContent = summary;
  $("#transfer-details").replaceChildren(...details.map((text) => el("li", { text })));
}
function transferBase() { return `/v1/agents/${encodeURIComponent(currentAgent)}/audio-cache`; }
function attachmentName(response, fallback) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : fallback;
}
async function busy(button, message, work) {
  button.disabled = true; report(message);
  try { await work(); } catch (err) { report(""); throw err; } finally { button.disabled = false; }
}
$("#export").addEventListener("click", (e) => guarded(() => busy(e.target, "Exporting…", async () => {
  const response = await api("GET", `${transferBase()}/export`, { raw: true });
  const name = attachmentName(response, `${currentAgent}.audiocache.tar`);
  const blob = await response.blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  report(`Exported ${name} (${(blob.size / 1024).toFixed(1)} KiB).`);
})));
$("#import-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const file = $("#import-file").files[0];
  const button = e.submitter || e.target.querySelector("button");
  guarded(() => busy(button, `Importing ${file.name}…`, async () => {
    const r = await api("POST", `${transferBase()}/import`,
      { body: file, headers: { "Content-Type": "application/x-tar" } });
    e.target.reset();
    await render();
    const missing = r.missingAudio ? `; ${r.missingAudio} left out of the export (no audio)` : "";
    report(`Imported ${file.name}: ${r.total} ${r.total === 1 ? "entry" : "entries"} in the archive — ` +
      `${r.created} created, ${r.replaced} replaced, ${r.unchanged} unchanged, ${r.failed} failed${missing}.`,
      r.failures.map((f) => `Not imported: entry ${f.index} “${f.transcript}”: ${f.reason}`));
  }));
});
$("#takes-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const file = $("#takes-file").files[0];
  const button = e.submitter || e.target.querySelector("button");
  guarded(() => busy(button, `Uploading ${file.name}…`, async () => {
    const r = await api("POST", `${transferBase()}/takes`,
      { body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    e.target.reset();
    await render();
    report(`Takes from ${file.name}: ${r.created} created, ${r.replaced} replaced, ` +
      `${r.failed} failed, ${r.skipped} skipped.`,
      r.results.filter((t) => t.reason).map((t) =>
        `${t.file}${t.transcript ? ` (“${t.transcript}”)` : ""}: ${t.action}, ${t.reason}`));
  }));
});

let uploadTarget = null;
async function replaceWith(url, file) {
  await api("PATCH", `${url}/file`, { body: file,
    headers: { "Content-Type": "audio/wav", "X-Filename": encodeURIComponent(file.name) } });
}
$("#upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file && uploadTarget) guarded(async () => { await replaceWith(uploadTarget, file); await render(); });
  e.target.value = "";
});

// Edit: Preview synthesizes the changed text/tuning; Save (only once something changed and
// was previewed) stores exactly the previewed audio with its settings (replace-with-settings).
const TUNING = ["stability", "similarityBoost", "speed"];
let editing = null;
function editSettings() {
  const form = $("#edit-form");
  const config = {};
  for (const name of TUNING) if (form.elements[name].value !== "") config[name] = Number(form.elements[name].value);
  return { text: form.elements.text.value, config };
}
function openEdit(url, entry) {
  editing = { url, entry, initial: null, preview: null };
  const form = $("#edit-form");
  form.elements.text.value = entry.transcript;
  for (const name of TUNING) form.elements[name].value = "";
  $("#edit-original").textContent = entry.transcript;
  editing.initial = JSON.stringify(editSettings());
  $("#edit-save").disabled = true;
  $("#edit").showModal();
  form.elements.text.focus();
}
$("#edit-form").addEventListener("input", () => {
  if (editing) { editing.preview = null; $("#edit-save").disabled = true; }
});
$("#edit-preview").addEventListener("click", () => guarded(async () => {
  const settings = editSettings();
  const response = await api("POST", `${editing.url}/synthesize`,
    Object.assign(json(settings), { raw: true }));
  editing.preview = { blob: await response.blob(), settings };
  $("#edit-player").src = URL.createObjectURL(editing.preview.blob);
  $("#edit-save").disabled = JSON.stringify(settings) === editing.initial;
}));
$("#edit-save").addEventListener("click", () => guarded(async () => {
  const form = new FormData();
  form.append("file", editing.preview.blob, "take.wav");
  form.append("settings", JSON.stringify(editing.preview.settings));
  await api("PUT", `${editing.url}/details`, { body: form });
  $("#edit").close(); editing = null;
  await render();
}));
$("#edit-cancel").addEventListener("click", () => { $("#edit").close(); editing = null; });

async function audioBlob(url, format) {
  const response = await api("GET", `${url}/file?output_format=${format}`, { raw: true });
  return URL.createObjectURL(await response.blob());
}
async function play(url, format) {
  const player = $("#player");
  player.src = await audioBlob(url, format);
  player.dataset.format = format;
  await player.play().catch(() => {});  // autoplay may be refused; the controls remain
}
async function download(url, entry) {
  const link = el("a", { href: await audioBlob(url, "wav"), download: entry.audioFilename || `${entry.id}.wav` });
  document.body.append(link); link.click(); link.remove();
}

// Sign-in needs the key alone: GET /v1/whoami tells its account (any valid key may ask).
$("#sign-in").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    state.key = $("#key").value.trim();
    let me;
    try { me = await api("GET", "/v1/whoami"); } catch (err) { state.key = null; throw err; }
    state.account = me.accountId;
    sessionStorage.setItem("audiocache.key", state.key);
    sessionStorage.setItem("audiocache.account", state.account);
    $("#key").value = "";
    await render();
  });
});
$("#sign-out").addEventListener("click", () => {
  sessionStorage.removeItem("audiocache.key"); sessionStorage.removeItem("audiocache.account");
  state.key = null; state.account = null; go(new URLSearchParams());
});
$("#filters").addEventListener("submit", (e) => {
  e.preventDefault();
  const params = new URLSearchParams({ agent: view().get("agent") || "" });
  if (view().get("sort")) params.set("sort", view().get("sort"));
  for (const [k, v] of new FormData(e.target)) if (v) params.set(k, v);
  go(params);
});
for (const button of document.querySelectorAll("th button.sort")) {
  button.addEventListener("click", () => {
    const params = view();
    const [field, dir] = (params.get("sort") || ":").split(":");
    params.set("sort", `${button.dataset.field}:${field === button.dataset.field && dir === "asc" ? "desc" : "asc"}`);
    params.delete("offset"); go(params);
  });
}
$("#prev").addEventListener("click", () => {
  const p = view(); p.set("offset", Math.max(0, Number(p.get("offset") || 0) - PAGE)); go(p);
});
$("#next").addEventListener("click", () => {
  const p = view(); p.set("offset", Number(p.get("offset") || 0) + PAGE); go(p);
});
// Bulk actions on the checked rows; bulk delete takes at most 20 ids a call.
const BULK_DELETE_MAX = 20;
async function bulk(kind) {
  const ids = [...document.querySelectorAll("input.pick:checked")].map((box) => box.value);
  if (!ids.length) throw new Error("Select at least one entry first.");
  const base = `/v1/agents/${encodeURIComponent(view().get("agent") || currentAgent)}/audio-cache`;
  if (kind === "delete") {
    if (!confirm(`Delete ${ids.length} selected entries?`)) return;
    const failed = [];
    for (let i = 0; i < ids.length; i += BULK_DELETE_MAX) {
      const answer = await api("POST", `${base}/bulk-delete`, json({ ids: ids.slice(i, i + BULK_DELETE_MAX) }));
      failed.push(...answer.failed);
    }
    if (failed.length) throw new Error(`Not deleted: ${failed.join(", ")}`);
    return;
  }
  for (const id of ids) {
    if (kind === "regenerate") await api("POST", `${base}/${id}/regenerate`);
    else await api(kind === "pin" ? "PUT" : "DELETE", `${base}/${id}/pin`);
  }
}
for (const button of document.querySelectorAll("#bulk button")) {
  button.addEventListener("click", () => guarded(async () => {
    try { await bulk(button.dataset.bulk); } finally { await render(); }
  }));
}
window.addEventListener("popstate", render);
render();
