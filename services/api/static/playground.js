/* remask playground: plain JavaScript, no dependencies, no build step.
 *
 * Offsets: the API counts Python code points; a JS string indexes UTF-16 units, so an emoji
 * is one offset for the server and two for the textarea. Every offset crosses that border
 * through toCodePoint / toUtf16, and edits are applied to Array.from(text) (code points).
 */
"use strict";

const MASK_GLYPH = "\u2591"; // how the server writes a position that is still masked
const KEY_STORE = "remask.apiKey"; // sessionStorage: the key lives as long as the tab
const ENDPOINTS = { revise: "v1/revise", repair: "v1/repair", infill: "v1/completions" };
const EXCERPT = 40; // code points of a span shown in its chip
const MAX_DIFF_COST = 400; // edit distance above which a snapshot is highlighted coarsely

const $ = (id) => document.getElementById(id);

const state = {
  spans: [], // [start, end) in code points of the editor's text, sorted, disjoint
  job: null, // the request that produced the results on screen
  edits: [],
  accepted: [],
  result: "",
  snapshots: [],
  controller: null, // AbortController of the request in flight
};

// ---- code points -------------------------------------------------------------------------

const codePoints = (s) => Array.from(s);
const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

/** The code-point offset of UTF-16 index i in s (an index inside a surrogate pair moves to its start). */
function toCodePoint(s, i) {
  if (i > 0 && i < s.length && isLow(s.charCodeAt(i)) && isHigh(s.charCodeAt(i - 1))) i -= 1;
  return codePoints(s.slice(0, i)).length;
}

/** The UTF-16 index of code-point offset cp in s. */
function toUtf16(s, cp) {
  let i = 0;
  let n = 0;
  for (const ch of s) {
    if (n === cp) break;
    i += ch.length;
    n += 1;
  }
  return i;
}

/** text with edits applied by code-point offsets; each edit's `before` must match the text. */
function applyEdits(text, edits) {
  const cps = codePoints(text);
  for (const e of [...edits].sort((a, b) => b.start - a.start)) {
    const found = cps.slice(e.start, e.end).join("");
    if (found !== e.before) {
      throw new Error(`edit [${e.start}, ${e.end}) expects “${e.before}” but the text holds “${found}”`);
    }
    cps.splice(e.start, e.end - e.start, ...codePoints(e.after));
  }
  return cps.join("");
}

// ---- small DOM helpers -------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(message, detail = "") {
  $("error-message").textContent = message;
  $("error-detail").textContent = detail;
  $("error").hidden = false;
  setStatus("");
}

function hideError() {
  $("error").hidden = true;
}

function currentTask() {
  return document.querySelector("input[name=task]:checked").value;
}

// ---- talking to the server ---------------------------------------------------------------

class ApiError extends Error {
  constructor(message, detail = "") {
    super(message);
    this.name = "ApiError";
    this.detail = detail;
  }
}

function describe(err, where) {
  return [where, err.type, err.code && `code ${err.code}`, err.param && `field ${err.param}`]
    .filter(Boolean)
    .join(" · ");
}

function requestHeaders(stream) {
  const headers = { "Content-Type": "application/json", Accept: stream ? "text/event-stream" : "application/json" };
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

/** An ApiError carrying the server's message when the body has the {"error": {...}} shape. */
async function httpError(resp) {
  const raw = await resp.text().catch(() => "");
  const where = `HTTP ${resp.status}${resp.statusText ? " " + resp.statusText : ""}`;
  let err = null;
  try {
    err = JSON.parse(raw).error;
  } catch {
    err = null; // not JSON: a proxy's page, say
  }
  if (err && typeof err.message === "string") return new ApiError(err.message, describe(err, where));
  return new ApiError(`The server answered ${where}.`, raw.slice(0, 300));
}

async function post(path, body, signal) {
  let resp;
  try {
    resp = await fetch(path, {
      method: "POST", headers: requestHeaders(body.stream), body: JSON.stringify(body), signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("Could not reach the server (network error).", `${err.message}; is it running at ${location.origin}?`);
  }
  if (!resp.ok) throw await httpError(resp);
  return resp;
}

/** Read server-sent events ("data: {json}" frames ending in "data: [DONE]"), calling onEvent per event. */
async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError("The connection broke during the stream.", err.message);
    }
    buffer += decoder.decode(chunk.value || new Uint8Array(), { stream: !chunk.done });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = frame.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data === "") continue;
      if (data === "[DONE]") {
        reader.cancel().catch(() => {});
        return;
      }
      let event;
      try {
        event = JSON.parse(data);
      } catch {
        throw new ApiError("The stream sent an event that is not JSON.", data.slice(0, 200));
      }
      if (event.error) throw new ApiError(event.error.message, describe(event.error, "error event in the stream"));
      onEvent(event);
    }
    if (chunk.done) break;
  }
  throw new ApiError("The stream ended before it was complete.", "no 'data: [DONE]' arrived");
}

// ---- requests ----------------------------------------------------------------------------

function wholeNumber(id, label, optional = false) {
  const raw = $(id).value.trim();
  if (raw === "" && optional) return null;
  const n = Number(raw);
  if (raw === "" || !Number.isInteger(n)) throw new Error(`${label}: enter a whole number`);
  return n;
}

/** What to send for the chosen task, and what the answer is measured against. */
function buildJob(task, text) {
  const common = {
    steps: wholeNumber("steps", "Steps"),
    seed: wholeNumber("seed", "Seed", true),
    stream: $("stream").checked,
  };
  if (task === "revise") {
    const body = { text, detect: $("detect").value, ...common };
    if (state.spans.length) body.spans = state.spans.map(([a, b]) => [a, b]);
    return { task, original: text, body };
  }
  if (task === "repair") {
    return { task, original: text, body: { code: text, language: $("language").value, ...common } };
  }
  // infill: the text between prompt and suffix is written; a selection is replaced
  const ta = $("text");
  const start = toCodePoint(text, ta.selectionStart);
  const end = toCodePoint(text, ta.selectionEnd);
  const s16 = toUtf16(text, start);
  const e16 = toUtf16(text, end);
  const body = {
    prompt: text.slice(0, s16), suffix: text.slice(e16), mode: $("mode").value,
    max_tokens: wholeNumber("max-tokens", "Max tokens"), candidates: $("candidates").checked, ...common,
  };
  return { task, original: text, body, insert: { start, end, before: text.slice(s16, e16) } };
}

/** Stream a request: snapshots go to the step view; answers the same object a plain request would. */
async function readStream(resp, job) {
  let final = null;
  if (job.task !== "infill") {
    await readEvents(resp, (ev) => {
      if (typeof ev.object === "string" && ev.object.endsWith(".snapshot")) addSnapshot(ev.text);
      else final = ev;
    });
  } else {
    const { prompt, suffix } = job.body;
    let text = "";
    let info = null;
    await readEvents(resp, (ev) => {
      const choice = (ev.choices || [])[0];
      if (!choice) return; // the usage-only chunk
      text += choice.text;
      const r = ev.remask || {};
      if (r.event === "snapshot") addSnapshot(prompt + r.snapshot + suffix);
      else if (r.event === "token") addSnapshot(prompt + text + suffix);
      else if (r.event === "done") info = r;
    });
    final = { choices: [{ text }], remask: info };
  }
  if (final === null) throw new ApiError("The stream ended without a result.");
  return final;
}

async function run() {
  if (state.controller) {
    state.controller.abort(); // the Run button is a Stop button while a request is out
    return;
  }
  hideError();
  const task = currentTask();
  const text = $("text").value;
  if (!text) {
    showError("Nothing to send: paste some text or code first.");
    return;
  }
  let job;
  try {
    job = buildJob(task, text);
  } catch (err) {
    showError(err.message);
    return;
  }
  state.controller = new AbortController();
  setBusy(true);
  clearOutput(job);
  const t0 = performance.now();
  try {
    const resp = await post(ENDPOINTS[task], job.body, state.controller.signal);
    const answer = job.body.stream ? await readStream(resp, job) : await resp.json();
    showAnswer(job, answer, performance.now() - t0);
  } catch (err) {
    if (err.name === "AbortError") setStatus("Stopped.");
    else if (err instanceof ApiError) showError(err.message, err.detail);
    else showError(`Something went wrong in the page: ${err.message}`);
  } finally {
    state.controller = null;
    setBusy(false);
    if (!state.snapshots.length) $("steps-panel").hidden = true; // repair, or refused before a step
  }
}

function setBusy(busy) {
  document.body.classList.toggle("busy", busy);
  $("run").textContent = busy ? "Stop" : "Run";
  if (busy) setStatus("Working…");
}

// ---- results -----------------------------------------------------------------------------

function clearOutput(job) {
  state.job = job;
  state.edits = [];
  state.accepted = [];
  state.snapshots = [];
  $("results").hidden = true;
  $("steps-panel").hidden = !job.body.stream;
  $("snapshot").replaceChildren();
  $("step-label").textContent = "waiting for the first step…";
  $("step-slider").max = "1";
  $("step-slider").value = "1";
  $("steps-panel").dataset.count = "0";
}

function mean(xs) {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

/** Edits, diff and a status line from an answer of /v1/revise, /v1/repair or /v1/completions. */
function showAnswer(job, answer, ms) {
  let edits;
  let diff;
  let note;
  const info = answer.remask || {};
  if (job.task === "infill") {
    const after = answer.choices[0].text;
    const conf = mean((info.tokens || []).map((t) => t.confidence));
    edits = after === job.insert.before ? [] : [{ ...job.insert, after, reason: `infill (${job.body.mode})`, confidence: conf }];
    diff = unifiedDiff(job.original, applyEdits(job.original, edits));
    note = "computed in the page";
  } else {
    edits = answer.edits;
    diff = answer.diff;
    note = "from the server, all edits";
  }
  state.edits = edits;
  state.accepted = edits.map(() => true);
  renderEdits();
  renderResult();
  renderDiff(diff, note);
  $("results").hidden = false;
  const parts = [`${edits.length} edit${edits.length === 1 ? "" : "s"}`];
  if (answer.object === "repair") parts.push(answer.parses ? "the code parses" : "no repair found: the code still does not parse");
  if (info.nfe) parts.push(`${info.nfe} refiner passes`);
  if (state.snapshots.length) parts.push(`${state.snapshots.length} streamed steps`);
  parts.push(`${Math.round(ms)} ms`);
  setStatus(parts.join(" · "));
}

function renderEdits() {
  const body = $("edits").tBodies[0];
  body.replaceChildren(...state.edits.map((e, i) => {
    const accept = el("input", { type: "checkbox", class: "accept", "aria-label": `accept edit ${i + 1}` });
    accept.checked = state.accepted[i];
    accept.addEventListener("change", () => setAccepted(i, accept.checked));
    const conf = e.confidence === null || e.confidence === undefined ? null : Number(e.confidence);
    return el("tr", { class: "edit", dataset: { index: String(i), start: String(e.start), end: String(e.end) } },
      el("td", {}, accept),
      el("td", {}, el("button", { type: "button", class: "locate", title: "select this range in the editor", onclick: () => locate(e) },
        `[${e.start}, ${e.end})`)),
      el("td", { class: "change" }, el("del", { class: "before" }, e.before), " → ", el("ins", { class: "after" }, e.after)),
      el("td", { class: "reason" }, e.reason),
      el("td", { class: "confidence" }, conf === null ? "—" : `${(100 * conf).toFixed(0)}%`,
        conf === null ? "" : el("meter", { min: "0", max: "1", value: conf.toFixed(3) })));
  }));
  state.accepted.forEach((on, i) => body.rows[i].classList.toggle("rejected", !on));
  $("edit-count").textContent = `${state.edits.length}`;
  $("no-edits").hidden = state.edits.length > 0;
  $("edits").hidden = state.edits.length === 0;
}

function setAccepted(i, on) {
  state.accepted[i] = on;
  const row = $("edits").tBodies[0].rows[i];
  row.classList.toggle("rejected", !on);
  row.querySelector("input.accept").checked = on;
  renderResult();
}

/** The input with the accepted edits applied; each applied edit is marked. */
function renderResult() {
  const original = state.job.original;
  const chosen = state.edits.filter((_, i) => state.accepted[i]);
  try {
    state.result = applyEdits(original, chosen);
  } catch (err) {
    showError("The edits do not fit the input text.", err.message);
    return;
  }
  const cps = codePoints(original);
  const out = [];
  let pos = 0;
  for (const e of [...chosen].sort((a, b) => a.start - b.start)) {
    out.push(cps.slice(pos, e.start).join(""));
    if (e.after) out.push(el("ins", { class: "applied" }, e.after));
    pos = e.end;
  }
  out.push(cps.slice(pos).join(""));
  $("result").replaceChildren(...out);
  $("result").dataset.accepted = String(chosen.length);
}

function renderDiff(diff, note) {
  $("diff-note").textContent = diff ? note : "";
  const lines = diff ? diff.replace(/\n$/, "").split("\n") : [];
  $("diff").replaceChildren(...lines.map((line) => {
    let cls = "";
    if (line.startsWith("+++") || line.startsWith("---")) cls = "meta";
    else if (line.startsWith("@@")) cls = "hunk";
    else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    return el("span", { class: `line ${cls}` }, line + "\n");
  }));
  if (!diff) $("diff").textContent = "(no changes)";
}

/** Select an edit's range in the editor, when the editor still holds the text it refers to. */
function locate(e) {
  const ta = $("text");
  const text = state.job.original;
  if (ta.value !== text) {
    setStatus("The editor's text changed since this run: its offsets no longer apply.");
    return;
  }
  ta.focus();
  ta.setSelectionRange(toUtf16(text, e.start), toUtf16(text, e.end));
  updateCursorInfo();
}

/** A unified diff of a single changed region (used for infill, where the server sends none). */
function unifiedDiff(a, b, name = "text") {
  if (a === b) return "";
  const A = a.split("\n");
  const B = b.split("\n");
  if (a.endsWith("\n") && b.endsWith("\n")) {
    A.pop();
    B.pop();
  }
  let p = 0;
  while (p < A.length && p < B.length && A[p] === B[p]) p++;
  let q = 0;
  while (q < A.length - p && q < B.length - p && A[A.length - 1 - q] === B[B.length - 1 - q]) q++;
  const ctx = 3;
  const from = Math.max(0, p - ctx);
  const tailA = Math.min(A.length, A.length - q + ctx);
  const tailB = Math.min(B.length, B.length - q + ctx);
  const range = (start, len) => (len === 1 ? `${start + 1}` : `${len ? start + 1 : start},${len}`);
  const lines = [`--- a/${name}`, `+++ b/${name}`, `@@ -${range(from, tailA - from)} +${range(from, tailB - from)} @@`];
  for (let i = from; i < p; i++) lines.push(" " + A[i]);
  for (let i = p; i < A.length - q; i++) lines.push("-" + A[i]);
  for (let i = p; i < B.length - q; i++) lines.push("+" + B[i]);
  for (let i = A.length - q; i < tailA; i++) lines.push(" " + A[i]);
  return lines.join("\n") + "\n";
}

// ---- denoising steps ---------------------------------------------------------------------

/**
 * Myers' O(ND) diff of two code-point arrays: [[op, text], ...] with op "=", "-" or "+".
 * Past maxCost edits it gives up and answers null (the caller falls back to a coarse view).
 */
function diffCodePoints(a, b, maxCost) {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const A = a.slice(pre, a.length - suf);
  const B = b.slice(pre, b.length - suf);
  const middle = myers(A, B, maxCost);
  if (middle === null) return null;
  const ops = [["=", a.slice(0, pre)], ...middle, ["=", a.slice(a.length - suf)]];
  const merged = [];
  for (const [op, cps] of ops) {
    if (!cps.length) continue;
    const last = merged[merged.length - 1];
    if (last && last[0] === op) last[1].push(...cps);
    else merged.push([op, [...cps]]);
  }
  return foldShortEqualities(merged.map(([op, cps]) => [op, cps.join("")]));
}

/**
 * Fold an equality of fewer than minEqual code points between two changes into them, so a
 * rewritten word reads as one change rather than letters that happen to match ("ce" in
 * "charge" -> "License"). ops: merged, so every inner equality lies between two changes.
 */
function foldShortEqualities(ops, minEqual = 4) {
  const out = [];
  let del = "";
  let add = "";
  const flush = () => {
    if (del) out.push(["-", del]);
    if (add) out.push(["+", add]);
    del = "";
    add = "";
  };
  ops.forEach(([op, text], i) => {
    const inner = i > 0 && i < ops.length - 1;
    if (op === "=" && inner && codePoints(text).length < minEqual) {
      del += text;
      add += text;
    } else if (op === "=") {
      flush();
      out.push([op, text]);
    } else if (op === "-") del += text;
    else add += text;
  });
  flush();
  return out;
}

function myers(A, B, maxCost) {
  const N = A.length;
  const M = B.length;
  if (N === 0 || M === 0) return [["-", A], ["+", B]];
  const off = N + M;
  const v = new Int32Array(2 * off + 2); // v[k + off]: furthest x on diagonal k
  const trace = [];
  for (let d = 0; d <= Math.min(N + M, maxCost); d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1] < v[off + k + 1]) ? v[off + k + 1] : v[off + k - 1] + 1;
      let y = x - k;
      while (x < N && y < M && A[x] === B[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= N && y >= M) return backtrack(trace, A, B, off);
    }
  }
  return null;
}

function backtrack(trace, A, B, off) {
  const ops = [];
  let x = A.length;
  let y = B.length;
  for (let d = trace.length - 1; d > 0; d--) {
    const v = trace[d]; // the furthest points after d - 1 edits
    const k = x - y;
    const prevK = k === -d || (k !== d && v[off + k - 1] < v[off + k + 1]) ? k + 1 : k - 1;
    const prevX = v[off + prevK];
    const prevY = prevX - prevK;
    for (; x > prevX && y > prevY; x--, y--) ops.push(["=", [A[x - 1]]]);
    if (x === prevX) ops.push(["+", [B[--y]]]); // came down: B[y - 1] was inserted
    else ops.push(["-", [A[--x]]]); // came right: A[x - 1] was deleted
  }
  for (; x > 0 && y > 0; x--, y--) ops.push(["=", [A[x - 1]]]);
  return ops.reverse();
}

function addSnapshot(text) {
  state.snapshots.push(text);
  const slider = $("step-slider");
  // follow the newest step unless the user moved the slider back to look at an older one
  const following = state.snapshots.length === 1 || Number(slider.value) >= Number(slider.max);
  slider.max = String(state.snapshots.length);
  $("steps-panel").dataset.count = String(state.snapshots.length);
  if (following) {
    slider.value = slider.max;
    renderSnapshot(state.snapshots.length - 1);
  } else {
    renderStepLabel(Number(slider.value) - 1);
  }
}

function renderStepLabel(i) {
  const masked = codePoints(state.snapshots[i]).filter((c) => c === MASK_GLYPH).length;
  $("step-label").textContent = `${i + 1} of ${state.snapshots.length} · ${masked} masked`;
}

/** One snapshot against the input: still-masked positions and text the refiner wrote are marked. */
function renderSnapshot(i) {
  const snap = state.snapshots[i];
  const ops = diffCodePoints(codePoints(state.job.original), codePoints(snap), MAX_DIFF_COST)
    || [["+", snap]]; // too different to align: mark it all
  const out = [];
  for (const [op, text] of ops) {
    if (op === "=") out.push(text);
    else if (op === "+") {
      for (const run of text.match(/\u2591+|[^\u2591]+/gu) || []) {
        out.push(run[0] === MASK_GLYPH ? el("span", { class: "masked" }, run) : el("mark", { class: "filled" }, run));
      }
    }
  }
  $("snapshot").replaceChildren(...out);
  $("snapshot").dataset.step = String(i + 1);
  renderStepLabel(i);
}

// ---- spans -------------------------------------------------------------------------------

function addSpan() {
  hideError();
  const ta = $("text");
  const text = ta.value;
  const start = toCodePoint(text, ta.selectionStart);
  const end = toCodePoint(text, ta.selectionEnd);
  if (end <= start) {
    showError("Select some text in the editor first, then press “Add span”.");
    return;
  }
  // the server refuses overlapping spans: merge them here
  const all = [...state.spans, [start, end]].sort((x, y) => x[0] - y[0]);
  const merged = [];
  for (const [a, b] of all) {
    const last = merged[merged.length - 1];
    if (last && a < last[1]) last[1] = Math.max(last[1], b);
    else merged.push([a, b]);
  }
  state.spans = merged;
  renderSpans();
}

function removeSpan(i) {
  state.spans.splice(i, 1);
  renderSpans();
}

function excerpt(cps, a, b) {
  const s = cps.slice(a, b);
  return s.length > EXCERPT ? s.slice(0, EXCERPT - 1).join("") + "…" : s.join("");
}

function renderSpans() {
  const cps = codePoints($("text").value);
  state.spans = state.spans.filter(([, b]) => b <= cps.length); // the text got shorter
  $("spans").replaceChildren(...state.spans.map(([a, b], i) => el("li", { class: "span-chip", dataset: { start: String(a), end: String(b) } },
    el("code", {}, `[${a}, ${b})`), " ", el("q", {}, excerpt(cps, a, b)), " ",
    el("button", { type: "button", class: "remove", "aria-label": `remove span ${a} to ${b}`, onclick: () => removeSpan(i) }, "×"))));
  $("spans-empty").hidden = state.spans.length > 0;
  $("clear-spans").disabled = state.spans.length === 0;
  const preview = $("span-preview");
  preview.hidden = state.spans.length === 0;
  const parts = [];
  let pos = 0;
  for (const [a, b] of state.spans) {
    parts.push(cps.slice(pos, a).join(""), el("mark", { class: "span" }, cps.slice(a, b).join("")));
    pos = b;
  }
  parts.push(cps.slice(pos).join(""));
  preview.replaceChildren(...parts);
}

// ---- editor ------------------------------------------------------------------------------

function updateCursorInfo() {
  const ta = $("text");
  const text = ta.value;
  const start = toCodePoint(text, ta.selectionStart);
  const end = toCodePoint(text, ta.selectionEnd);
  const before = codePoints(text.slice(0, ta.selectionStart));
  const line = before.filter((c) => c === "\n").length + 1;
  const column = before.length - (before.lastIndexOf("\n") + 1) + 1;
  const info = $("cursor-info");
  info.dataset.start = String(start);
  info.dataset.end = String(end);
  info.textContent = end > start
    ? `Selection [${start}, ${end}) · ${end - start} code points`
    : `Cursor at code point ${start} (line ${line}, column ${column})`;
}

function showTask() {
  const task = currentTask();
  for (const box of document.querySelectorAll(".options[data-task]")) box.hidden = box.dataset.task !== task;
}

function restoreKey() {
  try {
    $("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
  } catch {
    // storage can be off (privacy settings): the field still works for this page view
  }
}

function storeKey() {
  const key = $("api-key").value.trim();
  try {
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
  } catch {
    // as above
  }
}

function init() {
  restoreKey();
  $("api-key").addEventListener("input", storeKey);
  for (const radio of document.querySelectorAll("input[name=task]")) radio.addEventListener("change", showTask);
  const ta = $("text");
  ta.addEventListener("input", () => {
    renderSpans();
    updateCursorInfo();
  });
  for (const ev of ["select", "keyup", "mouseup", "focus"]) ta.addEventListener(ev, updateCursorInfo);
  $("add-span").addEventListener("click", addSpan);
  $("clear-spans").addEventListener("click", () => {
    state.spans = [];
    renderSpans();
  });
  $("run").addEventListener("click", run);
  ta.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      run();
    }
  });
  $("error-close").addEventListener("click", hideError);
  $("step-slider").addEventListener("input", () => renderSnapshot(Number($("step-slider").value) - 1));
  $("accept-all").addEventListener("click", () => state.edits.forEach((_, i) => setAccepted(i, true)));
  $("reject-all").addEventListener("click", () => state.edits.forEach((_, i) => setAccepted(i, false)));
  $("use-result").addEventListener("click", () => {
    ta.value = state.result;
    state.spans = [];
    renderSpans();
    updateCursorInfo();
    ta.focus();
  });
  showTask();
  renderSpans();
  updateCursorInfo();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", init);
