// einderiv serve: the page. Plain JS, no build step. The state lives in the URL's
// query (expr, wrt, shapes, order, layout), so a link reproduces a derivation.
// Text from the server is put in the page with textContent or KaTeX (trust: false),
// never as HTML; nothing typed is run: the server only parses einderiv's language.
"use strict";

const $ = (id) => document.getElementById(id);
const FIELDS = ["expr", "wrt", "shapes", "order", "layout"];
const DEBOUNCE_MS = 350;
let timer = null;
let sequence = 0;
let current = null;  // the last answer shown
let backend = "numpy";

function readForm() {
  const state = {};
  for (const f of FIELDS) state[f] = $(f).value;
  return state;
}

function writeForm(state) {
  for (const f of FIELDS) if (state[f] !== undefined && state[f] !== null) $(f).value = state[f];
}

function stateFromUrl() {
  const q = new URLSearchParams(window.location.search);
  const state = {};
  for (const f of FIELDS) if (q.has(f)) state[f] = q.get(f);
  return state;
}

function urlFor(state) {
  const q = new URLSearchParams();
  for (const f of FIELDS) {
    if (state[f] && !(f === "order" && state[f] === "1") && !(f === "layout" && state[f] === "denominator")) {
      q.set(f, state[f]);
    }
  }
  return window.location.pathname + "?" + q.toString();
}

// "X=n,d  Y=4; n=" -> {"X": ["n", "d"], "Y": [4], "n": []}
function parseShapes(text) {
  const shapes = {};
  const parts = text.replace(/\s+(?=[A-Za-z_]\w*\s*=)/g, ";").split(/[;\n]/);
  for (const raw of parts) {
    const part = raw.trim();
    if (!part) continue;
    const m = /^([A-Za-z_]\w*)\s*=\s*(.*)$/.exec(part);
    if (!m) throw new Error("shapes: write NAME=SIZES such as X=4,3 or X=n,d (n= for a scalar), got " +
                            JSON.stringify(part));
    shapes[m[1]] = m[2].split(",").map((s) => s.trim()).filter((s) => s)
      .map((s) => (/^\d+$/.test(s) ? parseInt(s, 10) : s));
  }
  return shapes;
}

function tex(el, latex, inline) {
  el.textContent = "";
  if (latex === null || latex === undefined) return;
  if (window.katex) {
    window.katex.render(latex, el, {throwOnError: false, displayMode: !inline, trust: false});
  } else {
    el.textContent = latex;
  }
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("status").textContent = "";
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(derive, DEBOUNCE_MS);
}

async function derive() {
  clearTimeout(timer);
  const state = readForm();
  window.history.replaceState(null, "", urlFor(state));
  if (!state.expr.trim() || !state.wrt.trim()) {
    $("status").textContent = "type an expression and the variable";
    return;
  }
  let shapes;
  try {
    shapes = parseShapes(state.shapes);
  } catch (err) {
    showError(err.message);
    return;
  }
  const mine = ++sequence;
  $("status").textContent = "deriving...";
  const body = {expr: state.expr, wrt: state.wrt, shapes: shapes,
                order: parseInt(state.order, 10), layout: state.layout, heatmap: true};
  let reply, data;
  try {
    reply = await fetch("/api/diff", {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
    data = await reply.json();
  } catch (err) {
    if (mine === sequence) showError("no answer from the server: " + err);
    return;
  }
  if (mine !== sequence) return;  // a newer request is on its way
  if (!reply.ok) {
    showError(data.kind + ": " + data.error);
    return;
  }
  $("error").hidden = true;
  $("status").textContent = "";
  show(data);
}

function show(d) {
  current = d;
  $("result").hidden = false;
  $("notation").textContent = "(" + d.notation + " notation)";
  tex($("input-tex"), "f = " + d.input_latex);
  tex($("index-tex"), d.index_latex);
  $("index-text").textContent = d.index;
  if (d.matrix !== null) {
    tex($("matrix-tex"), d.matrix_latex);
    $("matrix-text").textContent = d.matrix;
  } else {
    $("matrix-tex").textContent = "none: " + (d.reasons.matrix || "");
    $("matrix-text").textContent = "";
  }
  const sizes = d.shape.map((s) => (s === null ? "?" : String(s)));
  $("free").textContent = "free indices: (" + d.free.join(", ") + ")  \u00b7  shape: (" +
    sizes.join(", ") + (sizes.length === 1 ? "," : "") + ")  \u00b7  layout: " + d.layout;
  const steps = $("steps");
  steps.textContent = "";
  const multi = (d.steps || []).some((s) => s.order > 1);
  for (const s of d.steps || []) {
    const li = document.createElement("li");
    const head = document.createElement("div");
    const rule = document.createElement("span");
    rule.className = "rule";
    rule.textContent = (multi ? "order " + s.order + ", " : "") + s.rule + ": ";
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = s.detail;
    head.append(rule, detail);
    const math = document.createElement("div");
    tex(math, s.latex);
    li.append(head, math);
    steps.append(li);
  }
  const box = $("structure-box");
  box.hidden = d.structure === null;
  if (d.structure !== null) {
    tex($("compressed-tex"), d.structure.compressed_latex, true);
    $("compressed-text").textContent = d.structure.compressed;
    $("structure").textContent = d.structure.text;
  }
  drawHeat(d.heatmap, d.reasons.heatmap);
  showCode();
}

function showCode() {
  for (const b of document.querySelectorAll("#tabs [role=tab]")) {
    b.setAttribute("aria-selected", String(b.dataset.backend === backend));
  }
  const code = current && current.code;
  $("code").textContent = code ? code[backend] : "no code: " + ((current && current.reasons.code) || "");
}

function color(v, scale) {
  if (v === null) return "#bbb";
  if (v === 0) return "#fff";
  const t = Math.min(1, Math.abs(v) / scale);
  const fade = Math.round(255 * (1 - t));
  return v > 0 ? `rgb(255,${fade},${fade})` : `rgb(${fade},${fade},255)`;
}

function drawHeat(h, reason) {
  const canvas = $("heat");
  if (!h) {
    canvas.hidden = true;
    $("heat-caption").textContent = "none: " + (reason || "");
    $("heat-value").textContent = "";
    return;
  }
  canvas.hidden = false;
  const cell = Math.max(4, Math.min(28, Math.floor(480 / Math.max(h.rows, h.cols))));
  canvas.width = h.cols * cell;
  canvas.height = h.rows * cell;
  const ctx = canvas.getContext("2d");
  let scale = 0;
  for (const row of h.values) for (const v of row) if (v !== null) scale = Math.max(scale, Math.abs(v));
  scale = scale || 1;
  h.values.forEach((row, r) => row.forEach((v, c) => {
    ctx.fillStyle = color(v, scale);
    ctx.fillRect(c * cell, r * cell, cell, cell);
  }));
  const sizes = Object.entries(h.sizes).map(([n, s]) => n + " (" + s.join(", ") + ")").join(", ");
  $("heat-caption").textContent = `${h.rows} x ${h.cols}, order ${h.order}; red > 0, blue < 0, ` +
    `white exactly 0; data ${h.data}: ${sizes}`;
  canvas.onmousemove = (ev) => {
    const c = Math.floor(ev.offsetX / cell), r = Math.floor(ev.offsetY / cell);
    if (r < h.rows && c < h.cols) $("heat-value").textContent = `row ${r}, column ${c}: ${h.values[r][c]}`;
  };
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (err) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const old = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = old; }, 1200);
}

async function loadExamples() {
  let examples = [];
  try {
    examples = await (await fetch("/api/examples")).json();
  } catch (err) {
    return;
  }
  const nav = $("examples");
  for (const ex of examples) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = ex.title;
    b.addEventListener("click", () => {
      const shapes = Object.entries(ex.shapes).map(([n, s]) => n + "=" + s.join(",")).join(" ");
      writeForm({expr: ex.expr, wrt: ex.wrt, shapes: shapes, order: String(ex.order),
                 layout: "denominator"});
      derive();
    });
    nav.append(b);
  }
}

function start() {
  writeForm(stateFromUrl());
  for (const f of FIELDS) {
    $(f).addEventListener("input", schedule);
    $(f).addEventListener("change", schedule);
  }
  $("form").addEventListener("submit", (ev) => { ev.preventDefault(); derive(); });
  $("share").addEventListener("click", (ev) => copyText(window.location.href, ev.target));
  for (const b of document.querySelectorAll("#tabs [role=tab]")) {
    b.addEventListener("click", () => { backend = b.dataset.backend; showCode(); });
  }
  for (const b of document.querySelectorAll("button.copy")) {
    b.addEventListener("click", () => copyText($(b.dataset.copy).textContent, b));
  }
  loadExamples();
  if ($("expr").value) derive();
}

document.addEventListener("DOMContentLoaded", start);
