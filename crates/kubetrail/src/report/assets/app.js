// kubetrail's report page. One script for both uses: a report file carries its report as
// gzip-compressed JSON in #kt-data (inflated with the browser's DecompressionStream); the page
// that `kubetrail serve` hands out reads /api/report instead. The report's shape is
// docs/report.md's: columnar arrays, rows that point at each other by index.
//
// What can be large is drawn so that it stays cheap: 1000 nodes x 720 buckets are one canvas
// (one pixel per cell, scaled by CSS), and timelines are drawn one page of workloads at a time,
// a workload's pods only when it is opened.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("kt-config").textContent || "{}");
  const live = config.mode === "live";
  const PAGE = 20; // workloads per timeline page
  const PODS_SHOWN = 100; // pods of one workload before "show more"

  let R = null; // the report
  let byWorkload = []; // workload -> pod indexes
  let byPod = null; // pod -> event indexes (built when first needed)
  let warningsByPod = null; // pod -> Warning event indexes (likewise)
  let selectedNode = null;
  let charts = [];

  // ---- state in the URL: #q=..&pod=ns/name&node=..&since=..&until=..&page=.. ----
  function readState() {
    const p = new URLSearchParams(location.hash.slice(1));
    return {
      q: p.get("q") || "",
      pod: p.get("pod") || "",
      node: p.get("node") || "",
      since: p.get("since") || "",
      until: p.get("until") || "",
      page: Math.max(0, parseInt(p.get("page") || "0", 10) || 0),
    };
  }
  let state = readState();

  function writeState(changes, push) {
    Object.assign(state, changes);
    const p = new URLSearchParams();
    for (const k of ["since", "until", "q", "pod", "node"]) if (state[k]) p.set(k, state[k]);
    if (state.page) p.set("page", String(state.page));
    const hash = "#" + p.toString();
    if (hash !== location.hash) {
      if (push) history.pushState(null, "", hash);
      else history.replaceState(null, "", hash);
    }
  }

  // ---- formatting ----
  const fmtTime = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");
  function fmtDuration(ms) {
    if (ms < 1000) return ms + "ms";
    let s = Math.floor(ms / 1000);
    const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
    const parts = [];
    for (const [u, n] of units) {
      if (s >= n && parts.length < 2) { parts.push(Math.floor(s / n) + u); s %= n; }
      else if (parts.length) break;
    }
    return parts.join("") || "0s";
  }
  const fmtCpu = (m) => (m == null ? "-" : m % 1000 === 0 ? String(m / 1000) : m + "m");
  const fmtMib = (m) => (m == null ? "-" : m >= 1024 ? (m / 1024).toFixed(1) + "Gi" : m + "Mi");
  const pct = (r) => (r == null ? "-" : Math.round(r * 100) + "%");
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }

  // ---- loading ----
  async function inflate(b64) {
    const bin = atob(b64.trim());
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  async function load() {
    if (!live) return inflate($("kt-data").textContent);
    const p = new URLSearchParams();
    if (state.since) p.set("since", state.since);
    if (state.until) p.set("until", state.until);
    const resp = await fetch("/api/report?" + p.toString(), { headers: { Accept: "application/json" } });
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    return body;
  }

  async function start() {
    document.body.dataset.ready = "0";
    $("kt-status").className = "";
    $("kt-status").textContent = "Loading the report\u2026";
    try {
      R = await load();
      performance.mark("kt-loaded");
    } catch (err) {
      $("kt-status").className = "error";
      $("kt-status").textContent = "Cannot load the report: " + err.message;
      document.body.dataset.ready = "error";
      return;
    }
    render();
    // How long the page took to show its report, from navigation (BENCHMARKS.md reads these).
    performance.mark("kt-drawn");
    document.body.dataset.loadedMs = performance.getEntriesByName("kt-loaded").pop().startTime.toFixed(0);
    document.body.dataset.drawnMs = performance.now().toFixed(0);
    document.body.dataset.ready = "1";
    // After the next frame: layout and paint of what was drawn are done too.
    requestAnimationFrame(() => setTimeout(() => { document.body.dataset.paintedMs = performance.now().toFixed(0); }));
  }

  // ---- the whole page ----
  function render() {
    const w = R.window;
    // The drawn window, for scripts and tests that compare the page with `kubetrail query`.
    document.body.dataset.sinceMs = String(w.since_ms);
    document.body.dataset.untilMs = String(w.until_ms);
    $("kt-source").textContent = R.source;
    const filters = [];
    if (R.request.namespace) filters.push("namespace " + R.request.namespace);
    if (R.request.owner) filters.push("owner " + R.request.owner);
    if (R.request.node) filters.push("node " + R.request.node);
    $("kt-window").textContent = fmtTime(w.since_ms) + " to " + fmtTime(w.until_ms) + " (" + fmtDuration(w.until_ms - w.since_ms) +
      ", step " + fmtDuration(w.step_ms) + ")" + (filters.length ? " \u00b7 " + filters.join(", ") : "") +
      " \u00b7 generated " + fmtTime(R.generated_at_ms);
    $("kt-status").textContent = R.pods.name.length + " pods in " + R.workloads.name.length + " workloads, " +
      R.nodes.names.length + " nodes, " + R.events.pod.length + " events, " + R.warnings.last_seen_ms.length + " Warning events";
    const notes = $("kt-notes");
    notes.replaceChildren(...R.notes.map((n) => el("li", null, n)));
    byWorkload = R.workloads.name.map(() => []);
    R.pods.workload.forEach((wl, p) => byWorkload[wl].push(p));
    byPod = null;
    warningsByPod = null;
    renderCoverage();
    for (const c of charts) c.destroy();
    charts = [];
    renderOverview();
    renderHeatmap();
    renderTables();
    $("kt-search").value = state.q;
    if (live) { $("kt-since").value = state.since; $("kt-until").value = state.until; }
    const wanted = state.node ? R.nodes.names.indexOf(state.node) : -1;
    selectNode(wanted >= 0 ? wanted : busiestNode());
    renderTimelines();
  }

  const xPct = (t) => {
    const w = R.window;
    return Math.max(0, Math.min(100, ((t - w.since_ms) / (w.until_ms - w.since_ms)) * 100));
  };

  function renderCoverage() {
    const c = R.coverage;
    const strip = $("kt-coverage");
    strip.replaceChildren();
    const spans = c.known ? c.intervals : [[R.window.since_ms, R.window.until_ms]];
    for (const [a, b] of spans) {
      const d = el("div", { class: "cov", title: "recorded " + fmtTime(a) + " to " + fmtTime(b) });
      d.style.left = xPct(a) + "%";
      d.style.width = Math.max(0.1, xPct(b) - xPct(a)) + "%";
      strip.appendChild(d);
    }
    const total = R.window.until_ms - R.window.since_ms;
    let text;
    if (!c.known) text = "This database has no recording sessions, so which time was recorded is unknown: everything counts as recorded.";
    else {
      text = "Recorded " + fmtDuration(c.covered_ms) + " of the " + fmtDuration(total) + " window";
      text += c.gaps.length ? "; not recorded: " + c.gaps.slice(0, 5).map(([a, b]) => fmtTime(a) + " to " + fmtTime(b) + " (" + fmtDuration(b - a) + ")").join(", ") +
        (c.gaps.length > 5 ? " and " + (c.gaps.length - 5) + " more" : "") : "; no gaps.";
      if (c.partial_scopes.length) text += " Node sums partly from a scoped recorder (" + c.partial_scopes.join("; ") + ").";
    }
    $("kt-coverage-text").textContent = text;
  }

  // Grey bands over unrecorded time, drawn under the series.
  function gapHook(u) {
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = "rgba(120,120,120,0.18)";
    for (const [a, b] of R.coverage.gaps) {
      const x0 = u.valToPos(a / 1000, "x", true), x1 = u.valToPos(b / 1000, "x", true);
      ctx.fillRect(x0, u.bbox.top, Math.max(1, x1 - x0), u.bbox.height);
    }
    ctx.restore();
  }

  function chartWidth(elem) {
    return Math.max(400, (elem.clientWidth || document.body.clientWidth - 40) - 8);
  }

  const tzDate = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");

  function renderOverview() {
    const o = R.overview, host = $("kt-overview");
    host.replaceChildren();
    const xs = R.window.bucket_starts_ms.map((t) => t / 1000);
    // Nested within a bucket, each narrower than the one drawn before it, so that one never
    // hides another.
    const bars = (size) => uPlot.paths.bars({ size: [size, 48 * size] });
    const opts = {
      width: chartWidth(host), height: 260, tzDate,
      scales: { x: { time: true }, pods: { auto: true }, ev: { auto: true, range: (u, lo, hi) => [0, Math.max(1, hi)] } },
      series: [
        { label: "time (UTC)" },
        { label: "Pending", scale: "pods", stroke: "#e0b000", width: 2 },
        { label: "Running", scale: "pods", stroke: "#2f9e44", width: 2 },
        { label: "Succeeded", scale: "pods", stroke: "#4c7bd9", width: 2 },
        { label: "Failed", scale: "pods", stroke: "#d6336c", width: 2 },
        { label: "Restarts", scale: "ev", stroke: "#7b3fe4", fill: "#7b3fe455", paths: bars(0.7) },
        { label: "OOMKills", scale: "ev", stroke: "#e03131", fill: "#e0313155", paths: bars(0.45) },
        { label: "Evictions", scale: "ev", stroke: "#f08c00", fill: "#f08c0088", paths: bars(0.2) },
      ],
      axes: [{}, { scale: "pods", label: "pods" }, { scale: "ev", side: 1, label: "per " + fmtDuration(R.window.step_ms), grid: { show: false } }],
      hooks: { drawClear: [gapHook] },
    };
    charts.push(new uPlot(opts, [xs, o.pending, o.running, o.succeeded, o.failed, o.restarts, o.oom_kills, o.evictions], host));
  }

  // ---- nodes: one canvas, a pixel per (node, bucket) ----
  const METRICS = {
    cpu_req: ["cpu_requested_millis", "cpu_allocatable_millis", "CPU requests"],
    mem_req: ["memory_requested_mib", "memory_allocatable_mib", "memory requests"],
    cpu_lim: ["cpu_limits_millis", "cpu_allocatable_millis", "CPU limits"],
    mem_lim: ["memory_limits_mib", "memory_allocatable_mib", "memory limits"],
  };
  let heatOrder = [];
  let heatRowPx = 4;

  function ratio(metric, n, b) {
    const [num, den] = METRICS[metric];
    const v = R.nodes[num][n][b], a = R.nodes[den][n][b];
    return v == null || !a ? null : v / a;
  }

  function peak(metric, n) {
    let best = -1;
    for (let b = 0; b < R.window.bucket_starts_ms.length; b++) {
      const r = ratio(metric, n, b);
      if (r != null && r > best) best = r;
    }
    return best;
  }

  function busiestNode() {
    let best = null, bestPeak = -2;
    for (let n = 0; n < R.nodes.names.length; n++) {
      const p = peak("cpu_req", n);
      if (p > bestPeak) { bestPeak = p; best = n; }
    }
    return best;
  }

  // White through yellow and orange to red at 100%; purple past it.
  function color(r) {
    if (r > 1.0001) return [134, 46, 156];
    const stops = [[0, [244, 246, 249]], [0.5, [255, 212, 59]], [0.8, [247, 103, 7]], [1, [201, 42, 42]]];
    for (let i = 1; i < stops.length; i++) {
      const [t1, c1] = stops[i], [t0, c0] = stops[i - 1];
      if (r <= t1) {
        const f = (r - t0) / (t1 - t0);
        return [0, 1, 2].map((k) => Math.round(c0[k] + (c1[k] - c0[k]) * f));
      }
    }
    return stops[stops.length - 1][1];
  }

  function spellMask(list, nodes, buckets) {
    const w = R.window, mask = new Uint8Array(nodes * buckets);
    for (const [n, a, b] of list) {
      const first = bucketOf(a), last = bucketOf(b - 1);
      for (let i = first; i <= last; i++) {
        // A bucket counts when the spell covers at least half of it (or all of a short spell's).
        const start = w.bucket_starts_ms[i], end = i + 1 < buckets ? w.bucket_starts_ms[i + 1] : w.until_ms;
        if (Math.min(b, end) - Math.max(a, start) >= Math.min((end - start) / 2, b - a)) mask[n * buckets + i] = 1;
      }
    }
    return mask;
  }

  function bucketOf(t) {
    const w = R.window, first = Math.floor(w.since_ms / w.step_ms);
    return Math.max(0, Math.min(w.bucket_starts_ms.length - 1, Math.floor(t / w.step_ms) - first));
  }

  function renderHeatmap() {
    const metric = $("kt-metric").value, sort = $("kt-sort").value;
    const N = R.nodes.names.length, B = R.window.bucket_starts_ms.length;
    const canvas = $("kt-heatmap");
    heatOrder = [...Array(N).keys()];
    if (sort === "peak") {
      const peaks = heatOrder.map((n) => peak(metric, n));
      heatOrder.sort((a, b) => peaks[b] - peaks[a] || (R.nodes.names[a] < R.nodes.names[b] ? -1 : 1));
    }
    heatRowPx = Math.max(2, Math.min(16, Math.floor(720 / Math.max(1, N))));
    canvas.width = Math.max(1, B);
    canvas.height = Math.max(1, N);
    canvas.style.height = N * heatRowPx + "px";
    canvas.dataset.nodes = String(N);
    canvas.dataset.buckets = String(B);
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(canvas.width, canvas.height);
    const notReady = spellMask(R.nodes.not_ready, N, B), cordoned = spellMask(R.nodes.cordoned, N, B);
    const capacity = new Uint8Array(N * B);
    const ev = R.nodes.events;
    for (let i = 0; i < ev.node.length; i++) if (ev.kind[i] === "capacity_changed") capacity[ev.node[i] * B + bucketOf(ev.at_ms[i])] = 1;
    heatOrder.forEach((n, row) => {
      for (let b = 0; b < B; b++) {
        const r = ratio(metric, n, b);
        let c = r == null ? [222, 226, 230] : color(r);
        if (cordoned[n * B + b]) c = [c[0] * 0.4, c[1] * 0.55, Math.min(255, c[2] * 0.6 + 110)];
        if (notReady[n * B + b]) c = [30, 30, 30];
        if (capacity[n * B + b]) c = [21, 170, 191];
        const o = (row * B + b) * 4;
        img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
      }
    });
    ctx.putImageData(img, 0, 0);
    // The time axis under the canvas, starting where the canvas starts (after the labels).
    const axis = $("kt-heat-axis");
    renderAxis(axis);
    // Names beside the rows while they are tall enough to read.
    const labels = $("kt-heat-labels");
    labels.replaceChildren();
    if (heatRowPx >= 10) {
      for (const n of heatOrder) {
        const d = el("div", { "data-node": String(n) }, R.nodes.names[n]);
        d.style.height = heatRowPx + "px";
        d.style.lineHeight = heatRowPx + "px";
        labels.appendChild(d);
      }
    }
    axis.style.marginLeft = labels.offsetWidth + "px";
  }

  function heatCell(ev) {
    const canvas = $("kt-heatmap"), rect = canvas.getBoundingClientRect();
    const N = R.nodes.names.length, B = R.window.bucket_starts_ms.length;
    if (!N || !B) return null;
    const row = Math.floor(((ev.clientY - rect.top) / rect.height) * N);
    const b = Math.floor(((ev.clientX - rect.left) / rect.width) * B);
    if (row < 0 || row >= N || b < 0 || b >= B) return null;
    return { n: heatOrder[row], b };
  }

  function describeCell(n, b) {
    const nodes = R.nodes, t = R.window.bucket_starts_ms[b];
    const parts = [nodes.names[n], fmtTime(t)];
    if (nodes.cpu_allocatable_millis[n][b] == null) parts.push("not recorded");
    else {
      parts.push("CPU requests " + fmtCpu(nodes.cpu_requested_millis[n][b]) + " of " + fmtCpu(nodes.cpu_allocatable_millis[n][b]) + " (" + pct(ratio("cpu_req", n, b)) + ")");
      parts.push("limits " + pct(ratio("cpu_lim", n, b)));
      parts.push("memory requests " + fmtMib(nodes.memory_requested_mib[n][b]) + " of " + fmtMib(nodes.memory_allocatable_mib[n][b]) + " (" + pct(ratio("mem_req", n, b)) + ")");
      parts.push("limits " + pct(ratio("mem_lim", n, b)));
      parts.push(nodes.pods_peak[n][b] + " pods at most");
    }
    const end = b + 1 < R.window.bucket_starts_ms.length ? R.window.bucket_starts_ms[b + 1] : R.window.until_ms;
    const within = (list) => list.some(([m, a, z]) => m === n && a < end && z > t);
    if (within(nodes.not_ready)) parts.push("NotReady");
    if (within(nodes.cordoned)) parts.push("cordoned");
    return parts.join(" \u00b7 ");
  }

  function selectNode(n) {
    selectedNode = n;
    const host = $("kt-node-detail");
    for (const c of charts.splice(1)) c.destroy();
    host.replaceChildren();
    if (n == null) return;
    const nodes = R.nodes, name = nodes.names[n];
    host.className = "node-detail";
    host.dataset.node = name;
    host.appendChild(el("h3", null, "Node " + name + (nodes.partial[n] ? " (partial sums: a scoped recorder)" : "")));
    const xs = R.window.bucket_starts_ms.map((t) => t / 1000);
    const marks = [];
    for (let i = 0; i < nodes.events.node.length; i++) if (nodes.events.node[i] === n) marks.push(i);
    const warned = [];
    for (let i = 0; i < R.warnings.node.length; i++) if (R.warnings.node[i] === n) warned.push(i);
    const spells = (list, fill) => list.filter((s) => s[0] === n).map(([, a, b]) => [a, b, fill]);
    const bands = spells(nodes.not_ready, "rgba(30,30,30,0.25)").concat(spells(nodes.cordoned, "rgba(76,123,217,0.18)"));
    const markHook = (u) => {
      const ctx = u.ctx;
      ctx.save();
      for (const [a, b, fill] of bands) {
        const x0 = u.valToPos(a / 1000, "x", true), x1 = u.valToPos(b / 1000, "x", true);
        ctx.fillStyle = fill;
        ctx.fillRect(x0, u.bbox.top, Math.max(1, x1 - x0), u.bbox.height);
      }
      ctx.strokeStyle = "#15aabf";
      ctx.lineWidth = 2;
      for (const i of marks) {
        const x = u.valToPos(nodes.events.at_ms[i] / 1000, "x", true);
        ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      }
      // Warning events about the node: dashed, so they differ from transitions without colour.
      ctx.strokeStyle = "#e8590c";
      ctx.setLineDash([4, 3]);
      for (const i of warned) {
        const x = u.valToPos(R.warnings.last_seen_ms[i] / 1000, "x", true);
        ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      }
      ctx.restore();
    };
    const chart = (title, unit, req, lim, alloc, fmt) => {
      const box = el("div", { class: "chart", "data-chart": title });
      host.appendChild(box);
      const opts = {
        width: chartWidth(host), height: 200, title, tzDate,
        scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(1, hi) * 1.05] } },
        series: [
          { label: "time (UTC)" },
          { label: "requested", stroke: "#4c7bd9", width: 2, value: (u, v) => fmt(v) },
          { label: "limits", stroke: "#f08c00", width: 2, value: (u, v) => fmt(v) },
          { label: "allocatable", stroke: "#495057", width: 2, dash: [6, 4], value: (u, v) => fmt(v) },
        ],
        axes: [{}, { label: unit, values: (u, vals) => vals.map(fmt) }],
        hooks: { drawClear: [gapHook, markHook] },
      };
      charts.push(new uPlot(opts, [xs, req, lim, alloc], box));
    };
    chart("CPU", "cores", nodes.cpu_requested_millis[n], nodes.cpu_limits_millis[n], nodes.cpu_allocatable_millis[n], fmtCpu);
    chart("Memory", "bytes", nodes.memory_requested_mib[n], nodes.memory_limits_mib[n], nodes.memory_allocatable_mib[n], fmtMib);
    const table = el("table", { class: "node-events" });
    table.innerHTML = "<tr><th>at</th><th>kind</th><th>reason</th><th>message</th></tr>";
    for (const i of marks) {
      const tr = el("tr");
      for (const v of [fmtTime(nodes.events.at_ms[i]), nodes.events.kind[i], nodes.events.reason[i], nodes.events.message[i]]) tr.appendChild(el("td", null, v == null ? "" : v));
      table.appendChild(tr);
    }
    if (!marks.length) table.insertAdjacentHTML("beforeend", '<tr><td colspan="4" class="empty">no node transitions in the window</td></tr>');
    host.appendChild(el("h3", null, "Node transitions"));
    host.appendChild(table);
    const wt = el("table", { class: "node-warnings" });
    wt.innerHTML = "<tr><th>last seen</th><th>reason</th><th>count</th><th>from</th><th>note</th></tr>" +
      warned.map((i) => "<tr>" + [fmtTime(R.warnings.last_seen_ms[i]), R.warnings.reason[i], R.warnings.count[i], R.warnings.source[i], R.warnings.note[i]]
        .map((v) => "<td>" + esc(v) + "</td>").join("") + "</tr>").join("") +
      (warned.length ? "" : '<tr><td colspan="5" class="empty">no Warning events about the node in the window</td></tr>');
    host.appendChild(el("h3", null, "Warning events about the node"));
    host.appendChild(wt);
  }

  // ---- the "top" tables ----
  const podKey = (p) => R.namespaces[R.pods.namespace[p]] + "/" + R.pods.name[p];
  function podLink(p) {
    return '<a class="pod-link" href="#pod=' + encodeURIComponent(podKey(p)) + '" data-pod="' + p + '">' + esc(podKey(p)) + "</a>";
  }
  function fillTable(id, headers, rows, total, empty) {
    const t = $(id);
    let html = "<tr>" + headers.map((h) => "<th" + (h.num ? ' class="num"' : "") + ">" + esc(h.name || h) + "</th>").join("") + "</tr>";
    if (!rows.length) html += '<tr><td colspan="' + headers.length + '" class="empty">' + esc(empty) + "</td></tr>";
    for (const r of rows) html += "<tr>" + r.map((c, i) => "<td" + (headers[i].num ? ' class="num"' : "") + ">" + c + "</td>").join("") + "</tr>";
    if (total > rows.length) html += '<tr><td colspan="' + headers.length + '" class="empty">' + (total - rows.length) + " more not listed</td></tr>";
    t.innerHTML = html;
  }
  function workloadName(w) {
    return R.workloads.kind[w] + "/" + R.workloads.name[w];
  }

  function renderTables() {
    const P = R.pods, E = R.events, T = R.tables;
    fillTable("kt-warning-reasons", ["reason", { name: "occurrences", num: true }, { name: "about pods", num: true }, { name: "about nodes", num: true }, "last seen"],
      T.warning_reasons.map((r) => [esc(r.reason), String(r.occurrences), String(r.pods), String(r.nodes), esc(fmtTime(r.last_seen_ms))]),
      0, "no Warning events were recorded");
    const node = (p) => (P.node[p] == null ? "" : esc(R.nodes.names[P.node[p]]));
    fillTable("kt-top-restarts", ["pod", "workload", { name: "restarts", num: true }, "node", "phase"],
      T.top_restarts.map((p) => [podLink(p), esc(workloadName(P.workload[p])), String(P.restarts[p]), node(p), esc(P.phase[p] + (P.reason[p] ? " (" + P.reason[p] + ")" : ""))]),
      0, "no pod restarted");
    const evRow = (e) => [esc(fmtTime(E.at_ms[e])), podLink(E.pod[e]), esc(E.container[e] || ""), esc(E.exit_code[e] == null ? "" : E.exit_code[e]), esc(E.message[e] || "")];
    fillTable("kt-oom-kills", ["at", "pod", "container", { name: "exit", num: true }, "message"], T.oom_kills.map(evRow), T.oom_kills_total, "no container was OOMKilled");
    fillTable("kt-evictions", ["at", "pod", "node", "reason", "message"],
      T.evictions.map((e) => [esc(fmtTime(E.at_ms[e])), podLink(E.pod[e]), node(E.pod[e]), esc(E.reason[e] || ""), esc(E.message[e] || "")]),
      T.evictions_total, "no pod was evicted");
    fillTable("kt-longest-pending", ["pod", { name: "pending", num: true }, "created", "started"],
      T.longest_pending.map(([p, ms]) => [podLink(p), esc(fmtDuration(ms)), esc(fmtTime(P.created_ms[p])), esc(P.started_ms[p] == null ? "never" : fmtTime(P.started_ms[p]))]),
      0, "no pod was Pending");
  }

  // ---- timelines ----
  function eventsOf(p) {
    if (!byPod) {
      byPod = new Map();
      R.events.pod.forEach((pod, e) => {
        let list = byPod.get(pod);
        if (!list) byPod.set(pod, (list = []));
        list.push(e);
      });
    }
    return byPod.get(p) || [];
  }

  function warningsOf(p) {
    if (!warningsByPod) {
      warningsByPod = new Map();
      R.warnings.pod.forEach((pod, i) => {
        if (pod == null) return;
        let list = warningsByPod.get(pod);
        if (!list) warningsByPod.set(pod, (list = []));
        list.push(i);
      });
    }
    return warningsByPod.get(p) || [];
  }

  // A Warning event as a row of a pod's history table, as `query history` prints it.
  function warningRow(i) {
    const W = R.warnings, count = W.count[i];
    return { at_ms: W.last_seen_ms[i], kind: "event:" + (W.reason[i] || ""), container: W.container[i], reason: "Warning",
      message: (count > 1 ? "(x" + count + " since " + fmtTime(W.first_seen_ms[i]) + ") " : "") + (W.note[i] || "") };
  }

  function markClass(e) {
    const k = R.events.kind[e], r = R.events.reason[e];
    if (k === "container_restarted") return "restart";
    if (k === "container_terminated") return r === "OOMKilled" ? "oom" : "terminated";
    if (k === "failed") return r === "Evicted" ? "evicted" : "failed";
    return "waiting";
  }

  // Which workloads and pods the search keeps: a workload whose name matches keeps all its
  // pods; otherwise the pods whose name or node matches.
  function matches() {
    const q = state.q.trim().toLowerCase();
    const out = [];
    for (let w = 0; w < byWorkload.length; w++) {
      const pods = byWorkload[w];
      if (!q || workloadName(w).toLowerCase().includes(q) || R.namespaces[R.workloads.namespace[w]].toLowerCase() === q) {
        out.push([w, pods]);
        continue;
      }
      const kept = pods.filter((p) => R.pods.name[p].toLowerCase().includes(q) || (R.pods.node[p] != null && R.nodes.names[R.pods.node[p]].toLowerCase().includes(q)));
      if (kept.length) out.push([w, kept]);
    }
    return out;
  }

  function targetPods() {
    if (!state.pod) return [];
    const out = [];
    for (let p = 0; p < R.pods.name.length; p++) if (podKey(p) === state.pod) out.push(p);
    return out;
  }

  // Five time ticks across an axis element (the timelines', the heatmap's).
  function renderAxis(axis) {
    axis.replaceChildren();
    const w = R.window;
    for (let i = 0; i <= 4; i++) {
      const t = w.since_ms + ((w.until_ms - w.since_ms) * i) / 4;
      const s = el("span", null, fmtTime(Math.round(t)).replace("T", " "));
      s.style.left = i * 25 + "%";
      axis.appendChild(s);
    }
  }

  function renderTimelines() {
    renderAxis($("kt-tl-axis"));
    let list = matches();
    const targets = targetPods();
    if (targets.length) {
      // The linked pod's workload comes first, open, whatever the page.
      const w = R.pods.workload[targets[0]];
      list = [[w, byWorkload[w]]].concat(list.filter(([x]) => x !== w));
    }
    const pages = Math.max(1, Math.ceil(list.length / PAGE));
    const page = Math.min(state.page, pages - 1);
    const host = $("kt-timelines");
    host.replaceChildren();
    const podsShown = list.reduce((n, [, pods]) => n + pods.length, 0);
    $("kt-tl-summary").textContent = (state.q ? "Matching \u201c" + state.q + "\u201d: " : "") + podsShown + " pods in " + list.length + " workloads" +
      (pages > 1 ? "; page " + (page + 1) + " of " + pages : "");
    list.slice(page * PAGE, page * PAGE + PAGE).forEach(([w, pods], i) => {
      const d = el("details", { class: "wl", "data-workload": workloadName(w) });
      const W = R.workloads;
      const bad = [];
      if (W.restarts[w]) bad.push(W.restarts[w] + " restarts");
      if (W.oom_kills[w]) bad.push(W.oom_kills[w] + " OOMKills");
      if (W.evictions[w]) bad.push(W.evictions[w] + " evictions");
      if (W.failed[w]) bad.push(W.failed[w] + " failed");
      d.innerHTML = "<summary><b>" + esc(R.namespaces[W.namespace[w]]) + "</b> \u00b7 " + esc(workloadName(w)) +
        '<span class="counts">' + W.pods[w] + " pods" + (pods.length !== W.pods[w] ? " (" + pods.length + " matching)" : "") + "</span>" +
        (bad.length ? ' <span class="counts bad">' + esc(bad.join(", ")) + "</span>" : "") + "</summary>";
      const fill = () => {
        if (d.dataset.filled) return;
        d.dataset.filled = "1";
        drawPods(d, pods, PODS_SHOWN);
      };
      d.addEventListener("toggle", () => d.open && fill());
      host.appendChild(d);
      if ((targets.length && i === 0 && page === 0) || (state.q && list.length <= 3)) { d.open = true; fill(); }
    });
    renderPager(page, pages);
    if (targets.length) {
      const row = host.querySelector('.pod[data-pod="' + targets[0] + '"]');
      if (row) row.scrollIntoView({ block: "center" });
    }
  }

  function drawPods(details, pods, limit) {
    const P = R.pods, targets = new Set(targetPods());
    const sorted = pods.slice().sort((a, b) => P.created_ms[a] - P.created_ms[b]);
    let shown = targets.size ? sorted.filter((p) => targets.has(p)).concat(sorted.filter((p) => !targets.has(p))) : sorted;
    const rest = shown.length - limit;
    shown = shown.slice(0, limit);
    const frag = document.createDocumentFragment();
    for (const p of shown) frag.appendChild(podRow(p, targets.has(p)));
    details.appendChild(frag);
    if (rest > 0) {
      const more = el("button", { class: "more", type: "button" }, "show " + rest + " more pods");
      more.addEventListener("click", () => { more.remove(); drawPods(details, sorted.slice(limit), sorted.length); });
      details.appendChild(more);
    }
  }

  function podRow(p, target) {
    const P = R.pods, end = P.deleted_ms[p] == null ? R.window.until_ms : P.deleted_ms[p];
    const row = el("div", { class: "pod" + (target ? " target" : ""), "data-pod": String(p), "data-name": P.name[p] });
    const name = el("div", { class: "pname", title: podKey(p) }, P.name[p]);
    name.addEventListener("click", () => showHistory(p, row));
    row.appendChild(name);
    const track = el("div", { class: "track" });
    const bar = (phase, a, b) => {
      if (b <= a && phase !== "Pending") return;
      const d = el("div", { class: "bar " + phase, "data-tip": "pod:" + p });
      d.style.left = xPct(a) + "%";
      d.style.width = Math.max(0, xPct(b) - xPct(a)) + "%";
      track.appendChild(d);
    };
    const started = P.started_ms[p], finished = P.finished_ms[p];
    bar("Pending", P.created_ms[p], Math.min(end, started ?? finished ?? end));
    if (started != null) bar("Running", started, Math.min(end, finished ?? end));
    if (finished != null && (P.phase[p] === "Succeeded" || P.phase[p] === "Failed")) bar(P.phase[p], finished, end);
    for (const [a, b] of R.coverage.gaps) {
      const g = el("div", { class: "gap" });
      g.style.left = xPct(a) + "%";
      g.style.width = xPct(b) - xPct(a) + "%";
      track.appendChild(g);
    }
    for (const e of eventsOf(p)) {
      const m = el("div", { class: "mk " + markClass(e), "data-event": String(e), "data-kind": R.events.kind[e] });
      m.style.left = xPct(R.events.at_ms[e]) + "%";
      track.appendChild(m);
    }
    for (const i of warningsOf(p)) {
      const m = el("div", { class: "mk warning", "data-warning": String(i), "data-reason": R.warnings.reason[i] || "" });
      m.style.left = xPct(R.warnings.last_seen_ms[i]) + "%";
      track.appendChild(m);
    }
    row.appendChild(track);
    return row;
  }

  // A pod's full history: the transitions the report holds, or in the live view every row of
  // `query history` from /api/history.
  async function showHistory(p, row) {
    const next = row.nextElementSibling;
    if (next && next.classList.contains("history")) { next.remove(); return; }
    const box = el("div", { class: "history" });
    row.after(box);
    let rows = eventsOf(p).map((e) => ({ at_ms: R.events.at_ms[e], kind: R.events.kind[e], container: R.events.container[e], reason: R.events.reason[e], exit_code: R.events.exit_code[e], restart_count: R.events.restart_count[e], message: R.events.message[e] }))
      .concat(warningsOf(p).map(warningRow));
    if (live) {
      try {
        const q = new URLSearchParams({ namespace: R.namespaces[R.pods.namespace[p]], pod: R.pods.name[p] });
        const resp = await fetch("/api/history?" + q.toString());
        const body = await resp.json();
        // A reused name has several incarnations; this row's is the one created when it was.
        const mine = resp.ok && body.find((i) => i.created_at_ms === R.pods.created_ms[p]);
        // Its transitions and every event about it, merged by time as `query history` merges them.
        if (mine) rows = mine.transitions.concat((mine.events || []).map((ev) => ({ at_ms: ev.last_seen_ms, kind: "event:" + (ev.reason || ""), container: ev.container, reason: ev.type,
          message: (ev.count > 1 ? "(x" + ev.count + " since " + fmtTime(ev.first_seen_ms) + ") " : "") + (ev.note || "") })));
      } catch (err) {
        box.textContent = "cannot read the history: " + err.message;
        return;
      }
    }
    rows.sort((a, b) => a.at_ms - b.at_ms);
    const t = el("table");
    t.innerHTML = "<tr><th>at</th><th>kind</th><th>container</th><th>reason</th><th>exit</th><th>restarts</th><th>message</th></tr>" +
      rows.map((r) => "<tr>" + [fmtTime(r.at_ms), r.kind, r.container, r.reason, r.exit_code, r.restart_count, r.message].map((v) => "<td>" + esc(v) + "</td>").join("") + "</tr>").join("");
    box.appendChild(t);
  }

  function renderPager(page, pages) {
    const pager = $("kt-pager");
    pager.replaceChildren();
    if (pages <= 1) return;
    const button = (label, to) => {
      const b = el("button", { type: "button" }, label);
      b.disabled = to < 0 || to >= pages || to === page;
      b.addEventListener("click", () => { writeState({ page: to }, true); renderTimelines(); $("timelines").scrollIntoView(); });
      pager.appendChild(b);
    };
    button("\u2190 previous", page - 1);
    pager.appendChild(el("span", null, "page " + (page + 1) + " of " + pages));
    button("next \u2192", page + 1);
  }

  // ---- hover: a mark shows its row ----
  function eventHtml(e) {
    const E = R.events;
    const fields = [["pod", podKey(E.pod[e])], ["at", fmtTime(E.at_ms[e])], ["kind", E.kind[e] + (E.inferred[e] ? " (inferred)" : "")], ["container", E.container[e]],
      ["reason", E.reason[e]], ["exit code", E.exit_code[e]], ["restart count", E.restart_count[e]], ["message", E.message[e]]];
    return "<table>" + fields.filter(([, v]) => v != null && v !== "").map(([k, v]) => "<tr><th>" + esc(k) + "</th><td>" + esc(v) + "</td></tr>").join("") + "</table>";
  }

  function warningHtml(i) {
    const W = R.warnings;
    const fields = [["pod", W.pod[i] == null ? null : podKey(W.pod[i])], ["node", W.node[i] == null ? null : R.nodes.names[W.node[i]]], ["Warning event", W.reason[i]],
      ["last seen", fmtTime(W.last_seen_ms[i])], ["first seen", W.count[i] > 1 ? fmtTime(W.first_seen_ms[i]) : null], ["count", W.count[i] > 1 ? W.count[i] : null],
      ["container", W.container[i]], ["from", W.source[i]], ["note", W.note[i]]];
    return "<table>" + fields.filter(([, v]) => v != null && v !== "").map(([k, v]) => "<tr><th>" + esc(k) + "</th><td>" + esc(v) + "</td></tr>").join("") + "</table>";
  }

  function tipHtml(target) {
    if (target.dataset.event != null || target.dataset.warning != null) {
      // Marks within a few pixels of each other hide one another (an OOMKill and the restart
      // that follows it share a second): show every row under the pointer, in time order.
      const x = (m) => { const r = m.getBoundingClientRect(); return r.left + r.width / 2; };
      const here = x(target);
      const near = [...target.parentElement.querySelectorAll(".mk")].filter((m) => Math.abs(x(m) - here) <= 6)
        .map((m) => (m.dataset.warning != null ? { at: R.warnings.last_seen_ms[+m.dataset.warning], html: () => warningHtml(+m.dataset.warning), i: 1e9 + +m.dataset.warning }
          : { at: R.events.at_ms[+m.dataset.event], html: () => eventHtml(+m.dataset.event), i: +m.dataset.event }));
      near.sort((a, b) => a.at - b.at || a.i - b.i);
      const shown = near.slice(0, 6).map((m) => m.html()).join("<hr>");
      return shown + (near.length > 6 ? "<p>and " + (near.length - 6) + " more here</p>" : "");
    }
    const p = +target.dataset.tip.slice(4), P = R.pods;
    const fields = [["pod", podKey(p)], ["workload", workloadName(P.workload[p])], ["node", P.node[p] == null ? null : R.nodes.names[P.node[p]]],
      ["created", fmtTime(P.created_ms[p])], ["started", P.started_ms[p] == null ? null : fmtTime(P.started_ms[p])],
      ["finished", P.finished_ms[p] == null ? null : fmtTime(P.finished_ms[p])], ["deleted", P.deleted_ms[p] == null ? null : fmtTime(P.deleted_ms[p])],
      ["phase", P.phase[p] + (P.reason[p] ? " (" + P.reason[p] + ")" : "")], ["restarts", P.restarts[p]]];
    return "<table>" + fields.filter(([, v]) => v != null).map(([k, v]) => "<tr><th>" + esc(k) + "</th><td>" + esc(v) + "</td></tr>").join("") + "</table>";
  }

  function placeTip(tip, ev) {
    const x = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
    const y = ev.clientY + 14 + tip.offsetHeight > window.innerHeight ? ev.clientY - tip.offsetHeight - 10 : ev.clientY + 14;
    tip.style.left = Math.max(0, x) + "px";
    tip.style.top = Math.max(0, y) + "px";
  }

  document.addEventListener("mouseover", (ev) => {
    const target = ev.target.closest && ev.target.closest("[data-event], [data-warning], [data-tip]");
    const tip = $("kt-tip");
    if (!target || !R) { tip.hidden = true; return; }
    tip.innerHTML = tipHtml(target);
    tip.hidden = false;
    placeTip(tip, ev);
  });

  // ---- wiring ----
  function wire() {
    const canvas = $("kt-heatmap");
    canvas.addEventListener("mousemove", (ev) => {
      const c = R && heatCell(ev);
      $("kt-heat-readout").textContent = c ? describeCell(c.n, c.b) : "\u00a0";
    });
    canvas.addEventListener("click", (ev) => {
      const c = R && heatCell(ev);
      if (!c) return;
      writeState({ node: R.nodes.names[c.n] }, true);
      selectNode(c.n);
      $("kt-node-detail").scrollIntoView({ block: "nearest" });
    });
    $("kt-heat-labels").addEventListener("click", (ev) => {
      const n = ev.target.dataset && ev.target.dataset.node;
      if (n != null) { writeState({ node: R.nodes.names[+n] }, true); selectNode(+n); }
    });
    for (const id of ["kt-metric", "kt-sort"]) $(id).addEventListener("change", () => R && renderHeatmap());
    let typing = null;
    $("kt-search").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        const q = $("kt-search").value;
        writeState({ q, page: 0, pod: "" }, false);
        if (!R) return;
        const n = R.nodes.names.indexOf(q.trim());
        if (n >= 0) selectNode(n);
        renderTimelines();
      }, 150);
    });
    document.addEventListener("click", (ev) => {
      const a = ev.target.closest && ev.target.closest("a.pod-link");
      if (!a) return;
      ev.preventDefault();
      writeState({ pod: decodeURIComponent(a.getAttribute("href").slice(5)), q: "", page: 0 }, true);
      $("kt-search").value = "";
      renderTimelines();
    });
    document.addEventListener("click", (ev) => {
      const a = ev.target.closest && ev.target.closest("a[data-nav]");
      if (!a) return;
      ev.preventDefault();
      const section = $(a.getAttribute("href").slice(1));
      if (section) section.scrollIntoView();
    });
    window.addEventListener("hashchange", () => {
      const before = state;
      state = readState();
      if (!R) return;
      if (live && (before.since !== state.since || before.until !== state.until)) { start(); return; }
      $("kt-search").value = state.q;
      const n = state.node ? R.nodes.names.indexOf(state.node) : -1;
      if (n >= 0 && n !== selectedNode) selectNode(n);
      renderTimelines();
    });
    if (live) {
      $("kt-range").hidden = false;
      const apply = () => { writeState({ since: $("kt-since").value.trim(), until: $("kt-until").value.trim(), page: 0 }, true); start(); };
      $("kt-apply").addEventListener("click", apply);
      for (const id of ["kt-since", "kt-until"]) $(id).addEventListener("keydown", (ev) => ev.key === "Enter" && apply());
      for (const b of document.querySelectorAll(".presets button")) b.addEventListener("click", () => { $("kt-since").value = b.dataset.since; $("kt-until").value = ""; apply(); });
    }
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => { if (!R) return; for (const c of charts) c.setSize({ width: chartWidth(c.root.parentElement), height: c.height }); }, 200);
    });
  }

  wire();
  start();
})();
