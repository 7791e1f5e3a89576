// The operator page: polls /v1/ops/summary with the typed operator key; retry calls POST /v1/runs/{id}/retry.
"use strict";
const $ = (id) => document.getElementById(id);
let STAGES = ["stage1", "detect", "assemble", "vqa"];  // replaced by the summary's own list

function headers() {
  const key = $("key").value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child === null || child === undefined ? "" : child);
  return node;
}

async function request(path, method) {
  const response = await fetch(path, { method: method || "GET", headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.error ? body.error.message : response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

function state(value) {
  return el("span", { class: "state " + value }, value);
}

function runCard(run) {
  const done = run.by_state.done || 0;
  const failed = run.by_state.failed || 0;
  const head = el("div", { class: "run-head" },
    el("span", { class: "name" }, run.name), state(run.state),
    el("span", { class: "muted" }, `${run.total} samples · ${done} done · ${failed} failed`),
    el("span", { class: "muted" }, run.id));
  const card = el("div", { class: "run", "data-run": run.id }, head);
  const stages = el("div", { class: "stages" });
  for (const stage of STAGES) {
    const n = run.by_stage[stage] || 0;
    const pct = run.total ? Math.min(100, (100 * n) / run.total) : 0;
    const fill = el("span", { style: `width: ${pct.toFixed(1)}%` });
    stages.append(el("span", {}, stage), el("div", { class: "bar", title: `${n} / ${run.total}` }, fill),
      el("span", { class: "muted" }, `${n} / ${run.total}`));
  }
  card.append(stages);
  if (run.error) card.append(el("p", { class: "error" }, run.error));
  if (run.failures.length) {
    const list = el("ul", { class: "failures" });
    for (const f of run.failures) {
      list.append(el("li", {}, `${f.sample_key} · ${f.stage}: ${f.reason}${f.retryable ? " (retryable)" : ""}`));
    }
    card.append(list);
  }
  if (failed > 0) {
    const button = el("button", { type: "button", class: "retry" }, `Retry ${failed} failed`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const out = await request(`/v1/runs/${run.id}/retry`, "POST");
        $("notice").textContent = `retried ${out.retried} sample(s) of ${run.name}`;
        await refresh();
      } catch (err) {
        $("error").textContent = err.message;
        button.disabled = false;
      }
    });
    card.append(button);
  }
  return card;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  if (!rows.length) body.append(el("tr", {}, el("td", { class: "muted", colspan: "8" }, "none")));
  for (const cells of rows) body.append(el("tr", {}, ...cells.map((c) => el("td", {}, c))));
}

function number(x, digits) {
  return x === null || x === undefined ? "—" : Number(x).toFixed(digits);
}

async function refresh() {
  try {
    const data = await request("/v1/ops/summary");
    $("error").textContent = "";
    STAGES = data.stages;
    const runs = $("runs");
    runs.replaceChildren();
    if (!data.runs.length) runs.append(el("p", { class: "muted" }, "no runs yet"));
    for (const run of data.runs) runs.append(runCard(run));
    fill("jobs", data.jobs.map((j) => [
      j.name, state(j.state), j.launcher,
      j.total_steps ? `${j.step} / ${j.total_steps}` : String(j.step),
      number(j.loss, 4), j.eta_s === null ? "—" : `${Math.round(j.eta_s)} s`,
      j.checkpoints.length ? j.checkpoints.join(", ") : j.checkpoint_name, j.error || "",
    ]));
    fill("evaluations", data.evaluations.map((e) => [
      e.name, state(e.state), `${e.model_kind}: ${e.model_ref}`, e.bench_key,
      Object.entries(e.metrics).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`).join(" · "), e.error || "",
    ]));
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    $("error").textContent = err.message;
  }
}

$("refresh").addEventListener("click", refresh);
$("key").addEventListener("change", refresh);
refresh();
setInterval(refresh, 5000);
