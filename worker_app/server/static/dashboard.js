// The dashboard's one module. Everything a worker or the web app wrote (names, tags, reasons, log tails, file
// names) is put on the page with textContent: text, never markup. Live through Server-Sent Events.

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const directStorage = document.querySelector('meta[name="storage"]').content === "direct";  // scenes go to S3
const view = document.getElementById("view");
const live = document.getElementById("live");
let refreshTimer = null;
let jobForm = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...children) {
  // The view's new content; null and false (a part with nothing to show) are left out, arrays flattened.
  view.replaceChildren(...children.flat(2).filter((child) => child !== null && child !== undefined && child !== false));
}

async function api(path, options = {}) {
  const headers = { "X-CSRF-Token": csrf, ...(options.body ? { "Content-Type": "application/json" } : {}) };
  const response = await fetch("api/" + path, { credentials: "same-origin", ...options, headers });
  if (response.status === 401) { location.href = "sign-in"; throw new Error("signed out"); }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `the server answered ${response.status}`);
  return body;
}

function ago(epoch, now) {
  if (!epoch) return "never";
  const s = Math.max(0, Math.round((now ?? Date.now() / 1000) - epoch));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function when(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleString() : "—";
}

function progressOf(job) {
  const p = job.progress || {};
  const parts = [];
  if (p.frame_count) parts.push(`frame ${Math.min((p.frames_done ?? 0) + 1, p.frame_count)} of ${p.frame_count}`);
  if (p.percent !== null && p.percent !== undefined) parts.push(`${p.percent}%`);
  if (p.eta_s) parts.push(`${Math.round(p.eta_s)} s left`);
  if (!parts.length && p.stage) parts.push(p.stage);
  return parts.join(" · ");
}

function gpuLine(g) {
  const parts = [];
  if (g.temp_c !== undefined) parts.push(`${g.temp_c} °C`);
  if (g.power_w !== undefined) parts.push(`${g.power_w} W`);
  if (g.load !== undefined) parts.push(`${g.load}% load`);
  if (g.vram_used !== undefined && g.vram_total) parts.push(`${(g.vram_used / 2 ** 30).toFixed(1)} of ${(g.vram_total / 2 ** 30).toFixed(1)} GiB`);
  return `${g.name ?? "GPU"}: ${parts.join(" · ")}`;
}

function bar(job) {
  const p = job.progress || {};
  return el("progress", { max: 100, value: p.percent ?? 0, "aria-label": `job ${job.id} progress` });
}

// -- the farm -------------------------------------------------------------------------------------

const PAUSED = {
  manual: "paused (you paused it)", game: "paused: a game is running", gpu: "paused: another program uses the GPU",
  fullscreen: "paused: a full-screen program", active: "paused: someone is using the PC",
  schedule: "paused by its schedule", thermal: "paused: too hot, or drawing too much power",
  disk: "paused: too little free disk", "hold-off": "resuming in a moment", update: "paused: needs a newer homefarm",
};

function workerState(w) {
  if (w.state === "held") {
    return w.held_until ? `held from here until ${new Date(w.held_until * 1000).toLocaleTimeString()}` : "held from here until released";
  }
  if (w.state !== "paused") return w.state;
  const words = (PAUSED[w.pause_kind] || "paused") + (w.program ? ` (${w.program})` : "");
  return w.paused_until ? `${words}, until ${new Date(w.paused_until * 1000).toLocaleTimeString()}` : words;
}

async function farm() {
  const midnight = new Date().setHours(0, 0, 0, 0) / 1000;  // "today" in this browser's time zone
  const [data, activity] = await Promise.all([api(`overview?today=${midnight}`), api("activity")]);
  const workers = data.workers.length ? data.workers.map((w) => el("article", { class: "card worker", "data-name": w.name },
    el("h3", { text: w.name }),
    el("div", {}, el("span", { class: `state ${w.state}`, text: workerState(w) }),
      w.job ? el("span", {}, " job ", el("a", { href: `#/job/${w.job.id}`, text: w.job.id })) : null),
    w.job ? el("div", {}, bar(w.job), el("div", { class: "muted", text: progressOf(w.job) })) : null,
    w.job && Object.keys(w.job.gpu || {}).length ? el("div", { class: "muted gpu", text: gpuLine(w.job.gpu) }) : null,
    el("div", { class: "muted", text: `seen ${ago(w.last_seen, data.now)}${w.warm ? " · Blender kept warm" : ""}` }),
    el("div", {}, el("a", { href: `#/jobs?${new URLSearchParams({ worker: w.name })}`, text: today(w) })),
    el("div", { class: "muted", text: `homefarm ${w.app_version ?? "?"} · ${w.os ?? ""}` }),
    w.outdated ? el("div", { class: "flag", text: "a newer homefarm is available" }) : null,
    w.blender.length ? el("div", { class: "muted", text: `Blender ${w.blender.join(", ")}` }) : null,
    w.gpus.length ? el("div", { class: "muted", text: w.gpus.join(", ") }) : null,
    el("div", { class: "actions" }, w.held
      ? el("button", { type: "button", text: "Release", onclick: () => holdWorker(w.name, "release") })
      : [el("button", { type: "button", text: "Hold 1 hour", onclick: () => holdWorker(w.name, "hold", { minutes: 60 }) }),
        el("button", { type: "button", text: "Hold until released", onclick: () => holdWorker(w.name, "hold", { minutes: null }) })]),
  )) : [el("p", { class: "muted", text: "No worker has signed on yet: run homefarm login on the PC." })];
  const states = ["queued", "leased", "done", "failed", "canceled"];
  const counts = el("div", { class: "counts" }, states.map((s) => el("a", { class: "card", href: `#/jobs?state=${s}` },
    el("b", { text: data.counts[s] ?? 0 }), el("span", { class: `state ${s}`, text: s }))));
  const last = data.last ? el("section", { class: "last" }, el("h2", { text: "Last rendered" }),
    data.last.preview
      ? el("a", { href: `#/job/${data.last.job}` }, el("img", { src: `api/jobs/${data.last.job}/outputs/${encodeURI(data.last.name)}`, alt: `the last output, ${data.last.name}, of job ${data.last.job}` }))
      : el("p", {}, el("a", { href: `#/job/${data.last.job}`, text: `job ${data.last.job}` }), ` ${data.last.name} has no preview`)) : null;
  show(el("h1", { text: "Farm" }), el("h2", { text: "Workers" }), el("div", { class: "grid" }, workers),
    el("h2", { text: "Jobs" }), counts, chart(activity), last);
}

function today(w) {
  const jobs = `${w.jobs_today} job${w.jobs_today === 1 ? "" : "s"} today`;
  return w.energy_wh_today === null || w.energy_wh_today === undefined ? jobs : `${jobs} · ${w.energy_wh_today.toFixed(1)} Wh on the GPU`;
}

async function holdWorker(name, action, body) {
  try {
    await api(`workers/${encodeURIComponent(name)}/${action}`, { method: "POST", body: JSON.stringify(body || {}) });
    refresh();
  } catch (error) {
    show(el("p", { class: "problem", role: "alert", text: error.message }));
  }
}

function bars(hours, series, label) {
  // One bar per hour, its parts stacked: series is [[class, value of an hour], ...].
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const most = Math.max(1e-9, ...hours.map((h) => series.reduce((sum, [, value]) => sum + value(h), 0)));
  svg.setAttribute("viewBox", `0 0 ${hours.length} 100`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  hours.forEach((h, i) => {
    let y = 100;
    for (const [kind, value] of series) {
      const n = value(h);
      if (!n) continue;
      const height = (n / most) * 96;
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", i); rect.setAttribute("y", y - height);
      rect.setAttribute("width", 0.9); rect.setAttribute("height", height);
      rect.setAttribute("class", kind);
      y -= height;
      svg.append(rect);
    }
  });
  const line = document.createElementNS(ns, "line");
  line.setAttribute("x1", 0); line.setAttribute("x2", hours.length); line.setAttribute("y1", 100); line.setAttribute("y2", 100);
  line.setAttribute("class", "axis");
  svg.append(line);
  return [svg, el("div", { class: "axis-labels muted", "aria-hidden": "true" }, el("span", { text: "7 days ago" }), el("span", { text: "now" }))];
}

function chart(activity) {
  const hours = activity.hours;
  const done = hours.reduce((n, h) => n + h.done, 0);
  const failed = hours.reduce((n, h) => n + h.failed, 0);
  if (!done && !failed) {
    return el("section", { class: "chart" }, el("h2", { text: "Jobs an hour, last 7 days" }),
      el("p", { class: "muted", text: "No job ended in the last 7 days." }));
  }
  const minutes = hours.reduce((n, h) => n + h.render_s, 0) / 60;
  const reasons = activity.reasons.length ? el("ul", {}, activity.reasons.map(([reason, n]) => el("li", { text: `${n} × ${reason}` }))) : null;
  return el("section", { class: "chart" },
    el("h2", { text: "Jobs an hour, last 7 days" }),
    bars(hours, [["done", (h) => h.done], ["failed", (h) => h.failed]], `jobs an hour over the last 7 days: ${done} done, ${failed} failed`),
    el("p", { class: "muted", text: `${done} done, ${failed} failed` }),
    el("h2", { text: "Render time an hour, last 7 days" }),
    bars(hours, [["render", (h) => h.render_s]], `render time an hour over the last 7 days: ${minutes.toFixed(1)} minutes in all`),
    el("p", { class: "muted", text: `${minutes < 120 ? `${minutes.toFixed(1)} minutes` : `${(minutes / 60).toFixed(1)} hours`} of rendering` }),
    reasons ? el("h2", { text: "Failures by reason" }) : null, reasons);
}

// -- jobs -----------------------------------------------------------------------------------------

const FILTERS = ["state", "tag", "worker", "q"];

function jobsLink(filters, extra = {}) {
  const query = new URLSearchParams();
  for (const key of FILTERS) if (filters[key]) query.set(key, filters[key]);
  for (const [key, value] of Object.entries(extra)) query.set(key, value);
  return "#/jobs?" + query;
}

async function jobs(params) {
  const filters = Object.fromEntries(FILTERS.map((key) => [key, params.get(key) || ""]));
  const query = new URLSearchParams(jobsLink(filters).slice(7));
  if (params.get("cursor")) query.set("cursor", params.get("cursor"));
  const data = await api("jobs?" + query);
  const change = (key) => (e) => { location.hash = jobsLink({ ...filters, [key]: e.target.value.trim() }); };
  const stateFilter = el("select", { id: "state-filter", onchange: change("state") },
    ["", "queued", "leased", "done", "failed", "canceled"].map((s) => el("option", { value: s, text: s || "every state", selected: s === filters.state })));
  const text = (key, id, placeholder) => el("input", { id, type: "search", value: filters[key], placeholder, onchange: change(key) });
  const rows = data.jobs.map((j) => el("tr", { "data-job": j.id },
    el("td", {}, el("a", { href: `#/job/${j.id}`, text: j.id })),
    el("td", {}, el("span", { class: `state ${j.state}`, text: j.state })),
    el("td", { text: j.tag ?? "" }),
    el("td", {}, j.state === "leased" ? [bar(j), el("div", { class: "muted", text: progressOf(j) })] : el("span", { class: "muted", text: j.error ?? "" })),
    el("td", { class: "muted", text: when(j.updated) })));
  const more = data.next_cursor ? el("a", { href: jobsLink(filters, { cursor: data.next_cursor }), text: "Older jobs" }) : null;
  jobForm ??= newJobForm();  // one form, kept across the live refreshes: what the owner typed stays
  const filtered = FILTERS.some((key) => filters[key]);
  show(el("h1", { text: "Jobs" }), jobForm,
    el("div", { class: "filters", role: "search" },
      el("label", { for: "state-filter", text: "State" }), stateFilter,
      el("label", { for: "tag-filter", text: "Tag" }), text("tag", "tag-filter", "a tag"),
      el("label", { for: "worker-filter", text: "Worker" }), text("worker", "worker-filter", "a worker's name"),
      el("label", { for: "text-filter", text: "Search" }), text("q", "text-filter", "number, tag or reason"),
      filtered ? el("a", { href: "#/jobs", text: "Show all" }) : null),
    el("table", {}, el("thead", {}, el("tr", {}, ["Job", "State", "Tag", "Progress or reason", "Updated"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 5, class: "muted", text: filtered ? "No job matches." : "No jobs here." })))), more);
}

const ENDED = {
  done: "done", failed: "failed", retried: "failed, to be tried again", released: "given back unfinished",
  expired: "the worker went silent", canceled: "canceled",
};

function timeline(j) {
  const frames = (a) => a.frame_count ? ` · ${a.frames_done ?? 0} of ${a.frame_count} frames` : "";
  const items = [el("li", {}, el("b", { text: "Submitted" }), ` ${when(j.created)}`)];
  for (const a of j.timeline) {
    items.push(el("li", { class: a.outcome },
      el("b", { text: `Attempt ${a.attempt}` }), ` by ${a.worker ?? "a worker since gone"} · claimed ${when(a.claimed)}`,
      el("div", { class: "muted", text: `ended ${when(a.ended)}: ${ENDED[a.outcome] ?? a.outcome}${frames(a)} · ${a.uploaded} output${a.uploaded === 1 ? "" : "s"} uploaded` +
        (a.render_s ? ` · ${a.render_s.toFixed(1)} s rendering` : "") + (a.energy_wh ? ` · ${a.energy_wh.toFixed(2)} Wh` : "") }),
      a.reason && a.outcome !== "done" ? el("div", { class: "reason muted", text: a.reason }) : null));
  }
  if (j.state === "leased") {
    items.push(el("li", { class: "now" }, el("b", { text: `Attempt ${j.attempts}` }), ` claimed ${when(j.claimed)}, rendering now`,
      el("div", { class: "muted", text: progressOf(j) })));
  }
  return el("ol", { class: "timeline", "aria-label": "the job's timeline" }, items);
}

async function job(id) {
  const j = await api(`jobs/${encodeURIComponent(id)}`);
  const problem = el("p", { class: "problem", role: "alert" });
  const act = (path, body) => async () => {
    try { await api(`jobs/${j.id}/${path}`, { method: "POST", body: body ? JSON.stringify(body) : undefined }); refresh(); }
    catch (error) { problem.textContent = error.message; }
  };
  const priority = el("input", { id: "priority", type: "number", value: j.priority, min: -1000, max: 1000, "aria-label": "priority" });
  const actions = el("div", { class: "actions" },
    ["queued", "leased"].includes(j.state) ? el("button", { type: "button", onclick: act("cancel"), text: "Cancel" }) : null,
    ["failed", "canceled"].includes(j.state) ? el("button", { type: "button", onclick: act("retry"), text: "Render again" }) : null,
    j.state === "queued" ? [el("label", { for: "priority", text: "Priority" }), priority,
      el("button", { type: "button", text: "Set", onclick: () => act("priority", { priority: Number(priority.value) })() })] : null);
  const outputs = j.outputs.length ? el("div", { class: "outputs" }, j.outputs.map((o) => el("figure", {},
    o.preview ? el("a", { href: `api/jobs/${j.id}/outputs/${encodeURI(o.name)}`, target: "_blank", rel: "noopener" },
      el("img", { src: `api/jobs/${j.id}/outputs/${encodeURI(o.name)}`, alt: o.name, loading: "lazy" })) : el("div", { class: "muted", text: "no preview" }),
    el("figcaption", { text: `${o.name} · ${(o.size / 1024).toFixed(0)} KiB` })))) : el("p", { class: "muted", text: "No outputs yet." });
  const hooks = j.webhooks.length ? el("table", {}, el("tbody", {}, j.webhooks.map((w) => el("tr", {},
    el("td", { text: w.event }), el("td", { text: w.url }),
    el("td", { text: w.delivered ? `delivered ${when(w.delivered)}` : (w.next_attempt ? `next try ${when(w.next_attempt)}` : "given up") }),
    el("td", { text: `${w.attempts} attempt(s)${w.last_error ? ": " + w.last_error : ""}` }))))) : null;
  show(
    el("h1", {}, `Job ${j.id} `, el("span", { class: `state ${j.state}`, text: j.state })),
    j.tag ? el("p", {}, "Tag: ", el("span", { class: "tag", text: j.tag })) : null,
    j.state === "leased" ? el("div", {}, bar(j), el("p", { class: "muted", text: progressOf(j) })) : null,
    actions, problem,
    el("p", { class: "muted", text: `submitted ${when(j.created)} · attempt ${j.attempts} of ${j.max_attempts} · priority ${j.priority}` + (j.finished ? ` · ended ${when(j.finished)}` : "") }),
    j.error ? [el("h2", { text: "Why it failed" }), el("p", { class: "reason", text: j.error })] : null,
    el("h2", { text: "Timeline" }), timeline(j),
    el("h2", { text: "Outputs" }), outputs,
    j.warnings && j.warnings.length ? [el("h2", { text: "Warnings" }), el("ul", {}, j.warnings.map((w) => el("li", { text: `${w.kind}: ${w.path || ""} ${w.message || ""}` })))] : null,
    j.log_tail ? [el("h2", { text: "Blender's last lines" }), el("pre", { class: "log", tabindex: 0, "aria-label": "Blender's last lines", text: j.log_tail })] : null,
    hooks ? [el("h2", { text: "Webhook deliveries" }), hooks,
      j.webhooks.some((w) => !w.delivered && !w.next_attempt) ? el("button", { type: "button", text: "Send again", onclick: act("webhooks/again") }) : null] : null,
    el("h2", { text: "Spec" }), el("pre", { tabindex: 0, "aria-label": "the job's spec", text: JSON.stringify(j.spec, null, 2) }));
}

// -- a new job from a scene dropped on the page ----------------------------------------------------

function newJobForm() {
  const problem = el("p", { class: "problem", role: "alert" });
  const status = el("p", { class: "muted", role: "status" });
  const file = el("input", { id: "scene-file", type: "file", accept: ".blend", required: true });
  const field = (id, label, input) => el("div", { class: "field" }, el("label", { for: id, text: label }), input);
  const frames = el("input", { id: "frames", value: "1", required: true });
  const samples = el("input", { id: "samples", type: "number", value: 64, min: 1 });
  const width = el("input", { id: "width", type: "number", value: 1280, min: 1 });
  const height = el("input", { id: "height", type: "number", value: 720, min: 1 });
  const device = el("select", { id: "device" }, ["AUTO", "GPU", "CPU"].map((d) => el("option", { value: d, text: d })));
  const tag = el("input", { id: "tag" });
  const drop = el("div", { class: "drop", text: "Drop a .blend here, or choose one:" });
  const form = el("form", { class: "card new-job", "aria-label": "render a scene" }, drop, field("scene-file", "Scene", file),
    el("div", { class: "fields" }, field("frames", "Frames (1-24, 5)", frames), field("samples", "Samples", samples),
      field("width", "Width", width), field("height", "Height", height), field("device", "Device", device),
      field("tag", "Tag", tag)),
    el("button", { type: "submit", text: "Render" }), status, problem);
  form.addEventListener("dragover", (e) => { e.preventDefault(); form.classList.add("over"); });
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", (e) => {
    e.preventDefault(); form.classList.remove("over");
    if (e.dataTransfer.files.length) { file.files = e.dataTransfer.files; status.textContent = e.dataTransfer.files[0].name; }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    problem.textContent = "";
    const scene = file.files[0];
    if (!scene) { problem.textContent = "Choose a .blend file first."; return; }
    try {
      const asset = await uploadScene(scene, (text) => { status.textContent = text; });
      status.textContent = "Submitting…";
      const spec = { scene: asset, render: { frames: frames.value.trim(), samples: Number(samples.value),
        resolution: [Number(width.value), Number(height.value)], device: device.value } };
      if (tag.value.trim()) spec.tag = tag.value.trim();
      const made = await api("jobs", { method: "POST", body: JSON.stringify(spec) });
      location.hash = `#/job/${made.id}`;
    } catch (error) {
      status.textContent = "";
      problem.textContent = error.message;
    }
  });
  return form;
}

// -- a scene's upload: where the API sends bytes (straight to S3, or through the server) -------------

const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
const DIRECT_MAX = 1024 ** 3;  // the page hashes a scene in memory: larger ones go through the server

async function uploadScene(scene, say) {
  // With S3 storage the scene goes straight to the bucket, in parts each checked by its SHA-256 (the web app's
  // API does the same). Where the browser cannot (no crypto.subtle outside https, the bucket's CORS refuses this
  // page, a scene over 1 GiB), it goes through the server, and the page says why.
  if (directStorage && window.crypto?.subtle && scene.size <= DIRECT_MAX) {
    try {
      const stored = await uploadDirect(scene, say);
      if (stored) return stored;
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;  // refused by storage or the server: say so
      say(`Storage could not be reached from this page (its CORS rules?); sending ${scene.name} through the server…`);
      return await uploadThroughServer(scene);
    }
  }
  say(`Uploading ${scene.name}…`);
  return await uploadThroughServer(scene);
}

async function uploadThroughServer(scene) {
  const response = await fetch("api/assets", { method: "POST", body: scene, credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf, "Content-Type": "application/octet-stream" } });
  const asset = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(asset.message || `the upload failed (${response.status})`);
  return asset;
}

async function uploadDirect(scene, say) {
  // The stored scene; null when the server keeps scenes itself (then they go through it).
  say(`Checking ${scene.name}…`);
  const bytes = await scene.arrayBuffer();
  const sha256 = hex(await crypto.subtle.digest("SHA-256", bytes));
  const size = bytes.byteLength;
  const how = await api("assets/uploads", { method: "POST", body: JSON.stringify({ sha256, size }) });
  if (how.stored) return { sha256, size, url: how.url };
  if (!how.direct) return null;
  const partSize = how.part_size ?? size;
  const parts = [];
  for (let at = 0; at < size || parts.length === 0; at += partSize) {
    parts.push(hex(await crypto.subtle.digest("SHA-256", bytes.slice(at, Math.min(at + partSize, size)))));
  }
  const plan = await api("assets/uploads", { method: "POST", body: JSON.stringify({ sha256, size, parts }) });
  if (plan.stored) return { sha256, size, url: plan.url };
  const etags = {};
  for (const part of plan.parts) {
    say(`Uploading ${scene.name} to storage, part ${part.number} of ${parts.length}…`);
    const start = (part.number - 1) * partSize;
    const sent = await fetch(part.url, { method: "PUT", headers: part.headers, body: bytes.slice(start, Math.min(start + partSize, size)) });
    if (!sent.ok) throw new Error(`storage refused part ${part.number} of the scene (${sent.status})`);
    etags[String(part.number)] = sent.headers.get("ETag") ?? "";
  }
  return await api(`assets/${sha256}/commit`, { method: "POST", body: JSON.stringify({ sha256, size, parts, upload_id: plan.upload_id ?? null, etags }) });
}

// -- routing and live updates ---------------------------------------------------------------------

async function render() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  try {
    if (path.startsWith("/job/")) await job(decodeURIComponent(path.slice(5)));
    else if (path === "/jobs") await jobs(params);
    else await farm();
  } catch (error) {
    if (error.message !== "signed out") show(el("p", { class: "problem", role: "alert", text: error.message }));
  }
}

function refresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(render, 150);
}

function listen() {
  const source = new EventSource("events");
  source.addEventListener("open", () => { live.textContent = "live"; });
  source.addEventListener("change", refresh);
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; });
}

document.getElementById("sign-out").addEventListener("click", async () => {
  await fetch("sign-out", { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
  location.href = "sign-in";
});
window.addEventListener("hashchange", render);
render();
listen();
