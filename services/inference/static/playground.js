// The playground: upload an image, call /v1/assess, /v1/score and /v1/ask, draw the returned boxes.
"use strict";
const $ = (id) => document.getElementById(id);
const COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];
let file = null;
let bitmap = null;

function headers() {
  const key = $("key").value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}

async function call(path, extra) {
  const form = new FormData();
  form.append("image", file);
  for (const [k, v] of Object.entries(extra || {})) form.append(k, v);
  $("error").textContent = "";
  const response = await fetch(path, { method: "POST", body: form, headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.error ? body.error.message : response.statusText;
    $("error").textContent = `${response.status}: ${message}`;
    throw new Error(message);
  }
  $("model").textContent = "Model: " + body.model;
  $("timing").textContent = `${path}: ${body.timings.total_ms.toFixed(0)} ms (model ${body.timings.model_ms.toFixed(0)} ms, batch of ${body.timings.batch_size})`;
  return body;
}

function draw(objects, masks) {
  const canvas = $("canvas");
  // small images are shown larger (pixels kept sharp), large ones fit the panel
  const scale = Math.min(600 / bitmap.width, 460 / bitmap.height);
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = scale < 1;
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  ctx.lineWidth = 2;
  ctx.font = "bold 13px system-ui, sans-serif";
  (objects || []).forEach((obj, i) => {
    const color = COLORS[i % COLORS.length];
    obj.boxes.forEach((b) => {
      const [x1, y1, x2, y2] = b.norm.map((v, k) => v * (k % 2 ? canvas.height : canvas.width));
      ctx.strokeStyle = color;
      ctx.strokeRect(x1, y1, Math.max(2, x2 - x1), Math.max(2, y2 - y1));
      const label = obj.phrase + (obj.quality.length ? ": " + obj.quality.join(", ") : "");
      const w = ctx.measureText(label).width + 6;
      const ty = y1 > 18 ? y1 - 18 : Math.min(y2, canvas.height - 18);
      const tx = Math.max(0, Math.min(x1, canvas.width - w));  // the label stays inside the canvas
      ctx.fillStyle = color;
      ctx.fillRect(tx, ty, w, 18);
      ctx.fillStyle = "#fff";
      ctx.fillText(label, tx + 3, ty + 13);
    });
  });
  $("hint").textContent = masks && masks.length
    ? "Masks: " + masks.map((m) => `${m.quality} (${(m.area * 100).toFixed(1)}%)`).join(", ")
    : `${bitmap.width}×${bitmap.height} px`;
}

function listObjects(objects) {
  const list = $("objects");
  list.innerHTML = "";
  objects.forEach((obj, i) => {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = COLORS[i % COLORS.length];
    li.appendChild(sw);
    const where = obj.boxes.map((b) => `[${b.pixels.join(", ")}]`).join(" ");
    li.appendChild(document.createTextNode(
      `${obj.phrase} — ${obj.quality.join(", ") || "no quality word"}${obj.polarity ? " (" + obj.polarity + ")" : ""} at ${where}`));
    list.appendChild(li);
  });
}

$("file").addEventListener("change", async (event) => {
  file = event.target.files[0] || null;
  if (!file) return;
  bitmap = await createImageBitmap(file);
  draw([], null);
  for (const id of ["assess", "score", "ask"]) $(id).disabled = false;
});

$("assess").addEventListener("click", async () => {
  $("assess").disabled = true;
  try {
    const body = await call("/v1/assess", { mask: $("masks").checked ? "true" : "false" });
    $("text").textContent = body.text || "(empty answer)";
    listObjects(body.objects);
    draw(body.objects, body.masks);
  } catch (e) { /* shown in #error */ } finally { $("assess").disabled = false; }
});

$("score").addEventListener("click", async () => {
  try {
    const body = await call("/v1/score");
    const levels = Object.entries(body.levels).map(([k, v]) => `${k} ${(v * 100).toFixed(0)}%`).join(" · ");
    $("scoreOut").textContent = `${body.score.toFixed(2)} / 5  (${levels})`;
  } catch (e) { /* shown in #error */ }
});

$("askForm").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!file) return;
  try {
    const body = await call("/v1/ask", { question: $("question").value });
    let out = body.answer || "(empty answer)";
    if (body.p_yes !== null) out += `  — P(Yes) = ${body.p_yes.toFixed(2)}`;
    $("answer").textContent = out;
    if (body.objects.length) { listObjects(body.objects); draw(body.objects, null); }
  } catch (e) { /* shown in #error */ }
});

// the service's state needs no key (/ready); the model's id shows after the first answer
fetch("/ready")
  .then((r) => r.json())
  .then((b) => { $("model").textContent = b.status === "ok" ? b.detail : "Model loading…"; })
  .catch(() => { $("model").textContent = "Service unreachable"; });
