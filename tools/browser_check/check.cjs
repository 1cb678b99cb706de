// Real-browser check of the pack's web extension (web/ditto_motion.js). Started by run.sh, which prepares everything
// this needs and passes it in environment variables (see run.sh for the one documented command).
//
// It starts one ComfyUI server (127.0.0.1, a free port, --cache-none, stopped on exit or signal) whose --front-end-root
// is a folder this script fills with one frontend after the other (hard links), and for each phase (a frontend with
// the classic canvas or the Vue node renderer) opens Chromium (playwright-core, Debian's /usr/bin/chromium, a 1600x1000
// window at devicePixelRatio 2), and for every workflow in workflows/*.json:
//   * loads it (app.loadGraphData), checks that every node type is known, that the chart widget is the last widget of
//     each curve node and not serializable, that graph.serialize() and graphToPrompt() give the file's
//     widgets_values, and the API prompt the inputs of workflows/api/<same name>.json, and that the chart takes no
//     room before there is data;
//   * queues it (app.queuePrompt(0)) and waits for its /history entry; an execution error fails the check;
//   * exports it through the frontend's own commands (Comfy.ExportWorkflow, Comfy.ExportWorkflowAPI: the downloads a
//     user saves) now that the charts hold data, and compares again;
//   * checks for each curve node that the curves arrived (onExecuted), that its chart canvas ([data-ditto-chart]) is
//     shown at least 170 px high with drawn pixels (non-transparent, many colours, the series colours) at
//     devicePixelRatio resolution, read back from the canvas and from a screenshot of it, that it redraws at the new
//     width when the node is widened, and that the grown node overlaps no other node;
//   * screenshots the whole graph and each curve node (before the run, after it, widened) into the output folder.
// Console warnings and errors (and uncaught page errors) whose text or call stack mentions the pack ("ditto") fail the
// check; all console output is kept in <out>/<phase>/console.log, warnings and errors with their stacks beside it.
//
// A workflow with Go Live (Ditto) has no curve node: it is checked for the page's path in its node's output instead.
//
// Every Load Ditto Models node is checked after its workflow ran for the "runs on" line of web/ditto_devices.js (its
// ui "text" report: once, read-only, not in widgets_values / the API prompt / the exports, still once after a second
// onExecuted, the node not squeezed nor overlapping another) and screenshotted (<wf>-node<id>-DittoLoadModels.png).
//
// The phase "live" (renderer "live" in DITTO_BC_PHASE_SPECS) checks Go Live in this ComfyUI and the live page the
// pack serves on ComfyUI's own server: it queues the live workflow's API form (DITTO_BC_LIVE_WORKFLOW's twin in
// DITTO_BC_API_DIR) through POST /prompt, first under another avatar name (so that the page lists two avatars and
// must pick the one its ?avatar= names), then as shipped, checks the path Go Live reports, and runs live_check.cjs
// (DITTO_BC_LIVE_CHECK) in its page mode on http://127.0.0.1:PORT/ditto/live/?avatar=<name>: a fake microphone
// playing DITTO_BC_LIVE_WAV, the avatar listed and selected, idle on, Talk, DITTO_BC_LIVE_FRAMES (2) frames drawn
// within DITTO_BC_LIVE_TIMEOUT (600) s, Stop, an upload of the sample portrait to <page>/avatars; its PASS/FAIL lines
// and screenshots go to <out>/live/.
//
// DITTO_BC_URL=http://127.0.0.1:PORT runs the phases against a server that is already running (its frontend as it is),
// for working on this script.
"use strict";

const fs = require("fs");
const path = require("path");
const net = require("net");
const { spawn, execFileSync } = require("child_process");

const env = (name, def) => {
  const v = process.env[name];
  if (v === undefined || v === "") {
    if (def === undefined) throw new Error(`check.cjs: ${name} is not set (run it through run.sh)`);
    return def;
  }
  return v;
};

const NODE_MODULES = env("DITTO_BC_NODE_MODULES");
const { chromium } = require(path.join(NODE_MODULES, "playwright-core"));

const CFG = {
  comfyui: env("DITTO_BC_COMFYUI"),
  python: env("DITTO_BC_PYTHON"),
  standins: env("DITTO_BC_STANDINS", ""),
  base: env("DITTO_BC_BASE"),
  out: env("DITTO_BC_OUT"),
  chromium: env("DITTO_BC_CHROMIUM", "/usr/bin/chromium"),
  // "name|static dir|classic or vue" separated by ";"
  phases: env("DITTO_BC_PHASE_SPECS")
    .split(";")
    .filter(Boolean)
    .map((s) => {
      const [name, staticDir, renderer] = s.split("|");
      return { name, staticDir, vue: renderer === "vue", live: renderer === "live" };
    }),
  workflows: env("DITTO_BC_WORKFLOWS").split("\n").filter(Boolean),
  apiDir: env("DITTO_BC_API_DIR", ""),
  packDir: env("DITTO_BC_PACK_NAME", "ComfyUI-Ditto"),
  timeoutS: Number(env("DITTO_BC_TIMEOUT", "3600")),
  liveWorkflow: env("DITTO_BC_LIVE_WORKFLOW", ""),
  liveWav: env("DITTO_BC_LIVE_WAV", ""),
  liveCheck: env("DITTO_BC_LIVE_CHECK", path.join(__dirname, "live_check.cjs")),
  liveFrames: Number(env("DITTO_BC_LIVE_FRAMES", "2")),
  liveTimeoutS: Number(env("DITTO_BC_LIVE_TIMEOUT", "600")),
  dpr: Number(env("DITTO_BC_DPR", "2")),
};

const CURVE_TYPES = [
  "DittoMotionSampler", "DittoEditMotion", "DittoLoadMotion", "DittoSaveMotion", "DittoExtractDrivingMotion", "DittoMixMotion",
];
const GO_LIVE = "DittoGoLive";
const LIVE_PREFIX = "/ditto/live"; // where the pack mounts the live page on ComfyUI's server (nodes/live.py)
const CHART_WIDGET = "ditto_motion_chart";
const LOADER = "DittoLoadModels";
const RUNS_ON = "runs on"; // web/ditto_devices.js: the read-only line where Load Ditto Models' networks run
const SERIES_RGB = { yaw: [240, 160, 48], pitch: [64, 192, 224], roll: [128, 208, 96], mouth: [224, 96, 160] };

const log = (...a) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- server

let server = null;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Whether a process still runs (a zombie does not: it is not reaped while this waits synchronously).
function running(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch (e) {
    return false;
  }
}

// Synchronous, so that it also works from the "exit" handler.
function stopServer() {
  if (!server || server.stopped || server.exitCode !== null || server.signalCode !== null) return;
  server.stopped = true;
  const pid = server.pid;
  try {
    process.kill(-pid, "SIGTERM"); // its process group: ComfyUI and anything it started
  } catch (e) {
    return;
  }
  const t = Date.now();
  while (Date.now() - t < 10000 && running(pid)) execFileSync("sleep", ["0.2"]);
  try {
    process.kill(-pid, "SIGKILL");
  } catch (e) {
    /* gone */
  }
}

process.on("exit", stopServer);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    log(`${sig}: stopping the server`);
    stopServer();
    process.exit(130);
  });
}

async function startServer(frontRoot) {
  const port = await freePort();
  const logFile = path.join(CFG.out, "server.log");
  const fd = fs.openSync(logFile, "a");
  const args = ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", String(port),
    "--base-directory", CFG.base, "--front-end-root", frontRoot, "--disable-auto-launch",
    // every prompt runs every node: a cached intermediate node (the sampler, Edit Motion) sends no "executed"
    // message, so its curves would never arrive
    "--cache-none"];
  const childEnv = { ...process.env, DITTO_NO_EXAMPLE_INPUTS: "1", PYTHONUNBUFFERED: "1" };
  if (CFG.standins) childEnv.PYTHONPATH = [CFG.standins, process.env.PYTHONPATH].filter(Boolean).join(":");
  server = spawn(CFG.python, args, { cwd: CFG.comfyui, env: childEnv, detached: true, stdio: ["ignore", fd, fd] });
  fs.writeFileSync(path.join(CFG.out, "server.pid"), `${server.pid}\n`); // run.sh's exit trap stops a leftover
  const url = `http://127.0.0.1:${port}`;
  log(`ComfyUI starting on ${url} (log: ${logFile})`);
  const t0 = Date.now();
  while (Date.now() - t0 < 300000) {
    if (server.exitCode !== null) throw new Error(`ComfyUI exited with ${server.exitCode}; see ${logFile}`);
    try {
      const r = await fetch(`${url}/api/system_stats`);
      if (r.ok) {
        const stats = await r.json();
        log(`ComfyUI ${stats.system?.comfyui_version ?? "?"} is up after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
        return url;
      }
    } catch (e) {
      /* not yet */
    }
    await sleep(1000);
  }
  throw new Error(`ComfyUI did not answer within 300 s; see ${logFile}`);
}

function swapFrontend(frontRoot, staticDir) {
  fs.rmSync(frontRoot, { recursive: true, force: true });
  // hard links: aiohttp's static route serves real files only (no symlinks out of the root)
  execFileSync("cp", ["-al", staticDir, frontRoot]);
}

async function getJSON(url, opts) {
  const r = await fetch(url, opts);
  if (!r.ok) throw new Error(`${opts?.method ?? "GET"} ${url}: HTTP ${r.status}`);
  return r.json();
}

async function setSetting(url, id, value) {
  const r = await fetch(`${url}/api/settings/${encodeURIComponent(id)}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(value),
  });
  if (!r.ok) throw new Error(`setting ${id}: HTTP ${r.status}`);
}

// ---------------------------------------------------------------- page helpers (run in the browser)

// Installed before any page script: keeps the stack of every console.warn / console.error so that messages can be
// traced to the extension even when the frontend prints them (deprecation warnings name no file).
function consoleRecorder() {
  window.__bcConsole = [];
  for (const level of ["warn", "error"]) {
    const orig = console[level].bind(console);
    console[level] = (...args) => {
      let text;
      try {
        text = args.map((a) => (a instanceof Error ? `${a.message}\n${a.stack}` : typeof a === "object" ? JSON.stringify(a) : String(a))).join(" ");
      } catch (e) {
        text = args.map(String).join(" ");
      }
      window.__bcConsole.push({ level, text, stack: new Error().stack });
      return orig(...args);
    };
  }
}

// Information about the curve nodes of the loaded graph and their serialization.
async function inspectGraph({ curveTypes, chartWidget }) {
  const app = window.app;
  const graph = app.graph;
  const LG = window.LiteGraph ?? window.comfyAPI?.litegraph?.LiteGraph;
  const unknown = graph.nodes.filter((n) => LG && LG.registered_node_types && !LG.registered_node_types[n.type]).map((n) => n.type);
  const serialized = graph.serialize();
  const prompt = await app.graphToPrompt();
  const nodes = [];
  for (const n of graph.nodes) {
    const cls = n.comfyClass ?? n.constructor?.comfyClass ?? n.type;
    if (!curveTypes.includes(cls)) continue;
    const widgets = n.widgets ?? [];
    const chart = widgets.find((w) => w.name === chartWidget);
    const canvas = chart?.element?.querySelector?.("canvas[data-ditto-chart]") ?? null;
    const sNode = serialized.nodes.find((s) => String(s.id) === String(n.id)); // newer frontends: string ids
    const pNode = prompt.output[String(n.id)];
    const pwNode = prompt.workflow.nodes.find((s) => String(s.id) === String(n.id));
    let pixels = null;
    let rect = null;
    if (canvas) {
      const r = canvas.getBoundingClientRect();
      rect = { x: r.x, y: r.y, w: r.width, h: r.height, clientW: canvas.clientWidth, clientH: canvas.clientHeight,
        visible: typeof canvas.checkVisibility === "function" ? canvas.checkVisibility() : r.width > 0 };
      if (canvas.width > 0 && canvas.height > 0) {
        // read back through a copy, so that the chart's own context is not flagged for frequent readback
        const copy = new OffscreenCanvas(canvas.width, canvas.height);
        const cctx = copy.getContext("2d", { willReadFrequently: true });
        cctx.drawImage(canvas, 0, 0);
        const data = cctx.getImageData(0, 0, canvas.width, canvas.height).data;
        pixels = window.__bcPixelStats(data, canvas.width, canvas.height);
        pixels.backing = [canvas.width, canvas.height];
      }
    }
    nodes.push({
      id: n.id,
      type: cls,
      title: n.title,
      pos: [...n.pos],
      size: [...n.size],
      bounding: n.getBounding ? [...n.getBounding()] : null,
      minSize: n.computeSize ? [...n.computeSize()] : null,
      widgetNames: widgets.map((w) => w.name),
      serializableNames: widgets.filter((w) => w.serialize !== false).map((w) => w.name),
      chartIndex: widgets.findIndex((w) => w.name === chartWidget),
      hasCurves: !!n.dittoCurves,
      frames: n.dittoCurves?.frames ?? null,
      widgetsValues: sNode?.widgets_values ?? null,
      workflowWidgetsValues: pwNode?.widgets_values ?? null,
      promptInputs: pNode ? Object.keys(pNode.inputs) : null,
      canvasFound: !!canvas,
      rect,
      pixels,
    });
  }
  const others = graph.nodes.map((n) => ({ id: n.id, type: n.type, bounding: n.getBounding ? [...n.getBounding()] : null }));
  return { unknown, nodes, others, dpr: window.devicePixelRatio };
}

// The Load Ditto Models nodes of the loaded graph: their widgets, serialization and the "runs on" line.
async function inspectLoaders({ loader, runsOn }) {
  const app = window.app;
  const serialized = app.graph.serialize();
  const prompt = await app.graphToPrompt();
  const out = [];
  for (const n of app.graph.nodes) {
    const cls = n.comfyClass ?? n.constructor?.comfyClass ?? n.type;
    if (cls !== loader) continue;
    const widgets = n.widgets ?? [];
    const lines = widgets.filter((w) => w.name === runsOn);
    const w = lines[0];
    const sNode = serialized.nodes.find((s) => String(s.id) === String(n.id));
    const pwNode = prompt.workflow.nodes.find((s) => String(s.id) === String(n.id));
    const el = document.querySelector(`[data-node-id="${n.id}"]`);
    let dom = null;
    if (el && el.getBoundingClientRect().width > 0) {
      // the Vue node renderer: is the line shown (an input or text area holding it, or its text)?
      const fields = [...el.querySelectorAll("input, textarea")].map((f) => ({
        value: f.value, readOnly: !!f.readOnly, disabled: !!f.disabled, visible: f.checkVisibility ? f.checkVisibility() : true,
      }));
      const r = el.getBoundingClientRect();
      dom = { fields, text: el.innerText, labelShown: el.innerText.includes(runsOn), rect: [r.x, r.y, r.width, r.height], height: r.height / app.canvas.ds.scale };
    }
    out.push({
      id: n.id,
      size: [...n.size],
      minSize: n.computeSize ? [...n.computeSize()] : null,
      bounding: n.getBounding ? [...n.getBounding()] : null,
      widgetNames: widgets.map((x) => x.name),
      count: lines.length,
      index: widgets.findIndex((x) => x.name === runsOn),
      widget: w ? {
        type: w.type, value: w.value, tooltip: w.tooltip ?? null, serialize: w.serialize, optSerialize: w.options?.serialize,
        displayValue: "_displayValue" in w ? w._displayValue : null, // what the canvas draws (concrete widgets)
        disabled: !!w.disabled, readOnly: !!(w.options?.read_only ?? w.options?.readonly ?? w.readonly), lastY: w.last_y ?? w.y ?? null,
        height: typeof w.computeSize === "function" ? w.computeSize(n.size[0])?.[1] ?? null : null,
      } : null,
      nodeSerialize: n.serialize().widgets_values ?? null,
      graphSerialize: sNode?.widgets_values ?? null,
      workflowWidgetsValues: pwNode?.widgets_values ?? null,
      promptInputs: prompt.output[String(n.id)] ? prompt.output[String(n.id)].inputs : null,
      dom,
    });
  }
  return out;
}

// Pixel statistics of RGBA data: share of non-transparent pixels, distinct colours (4 bits a channel), and how many
// pixels are close to each series colour.
// screen rectangles [x, y, w, h] of the nodes the Vue renderer lays out as DOM elements, by node id (the largest
// element of each); empty with the canvas renderer
async function nodeRects(page) {
  return page.evaluate(() => {
    const out = {};
    for (const el of document.querySelectorAll("[data-node-id]")) {
      const r = el.getBoundingClientRect();
      const id = el.getAttribute("data-node-id");
      if (r.width > 0 && r.height > 0 && (!out[id] || r.width * r.height > out[id][2] * out[id][3])) out[id] = [r.x, r.y, r.width, r.height];
    }
    return out;
  });
}

function pixelStatsSource() {
  window.__bcPixelStats = (data, w, h, seriesRgb) => {
    const series = seriesRgb ?? window.__bcSeries;
    let opaque = 0;
    const colours = new Set();
    const near = {};
    for (const k of Object.keys(series)) near[k] = 0;
    for (let i = 0; i < data.length; i += 4) {
      const a = data[i + 3];
      if (a > 0) opaque++;
      colours.add(((data[i] >> 4) << 12) | ((data[i + 1] >> 4) << 8) | ((data[i + 2] >> 4) << 4) | (a >> 4));
      if (a > 200) {
        for (const [k, [r, g, b]] of Object.entries(series)) {
          if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60) near[k]++;
        }
      }
    }
    return { opaqueShare: opaque / (w * h), colours: colours.size, near };
  };
}

async function screenshotStats(page, buf) {
  return page.evaluate(async (b64) => {
    const blob = await (await fetch(`data:image/png;base64,${b64}`)).blob();
    const bmp = await createImageBitmap(blob);
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const ctx = c.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0);
    const data = ctx.getImageData(0, 0, bmp.width, bmp.height).data;
    return { ...window.__bcPixelStats(data, bmp.width, bmp.height), size: [bmp.width, bmp.height] };
  }, buf.toString("base64"));
}

// ---------------------------------------------------------------- checks

function overlaps(a, b) {
  return a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];
}

function checkSerialization(wfJson, apiJson, info, when, fail) {
  for (const n of info.nodes) {
    const orig = wfJson.nodes.find((o) => String(o.id) === String(n.id));
    if (n.chartIndex !== n.widgetNames.length - 1) fail(`${when}: node ${n.id} ${n.type}: the chart widget is not the last widget (${n.widgetNames.join(", ")})`);
    if (n.serializableNames.includes(CHART_WIDGET)) fail(`${when}: node ${n.id} ${n.type}: the chart widget is serializable`);
    for (const [label, values] of [["graph.serialize()", n.widgetsValues], ["graphToPrompt().workflow", n.workflowWidgetsValues]]) {
      if (!Array.isArray(values)) {
        fail(`${when}: node ${n.id} ${n.type}: no widgets_values in ${label}`);
        continue;
      }
      if (values.length !== n.serializableNames.length) fail(`${when}: node ${n.id} ${n.type}: ${label} has ${values.length} widgets_values for ${n.serializableNames.length} serializable widgets`);
      if (orig && JSON.stringify(values) !== JSON.stringify(orig.widgets_values)) {
        fail(`${when}: node ${n.id} ${n.type}: ${label} widgets_values ${JSON.stringify(values)} differ from the file's ${JSON.stringify(orig.widgets_values)}`);
      }
    }
    if (!n.promptInputs) fail(`${when}: node ${n.id} ${n.type}: not in the API prompt`);
    else {
      if (n.promptInputs.includes(CHART_WIDGET)) fail(`${when}: node ${n.id} ${n.type}: the chart widget is in the API prompt`);
      const api = apiJson?.[String(n.id)];
      if (api) {
        const want = Object.keys(api.inputs).sort().join(",");
        const got = [...n.promptInputs].sort().join(",");
        if (want !== got) fail(`${when}: node ${n.id} ${n.type}: API prompt inputs [${got}] differ from the API workflow's [${want}]`);
      }
    }
  }
}

// "Save" the way a user exports: the frontend's Export commands, which download the workflow / API prompt JSON.
async function exportVia(page, command) {
  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: 20000 }),
    page.evaluate((c) => window.app.extensionManager.command.execute(c), command),
  ]);
  return JSON.parse(fs.readFileSync(await download.path(), "utf8"));
}

function checkExported(wfJson, apiJson, info, exported, exportedApi, fail) {
  for (const n of info.nodes) {
    const tag = `exported workflow: node ${n.id} ${n.type}`;
    const orig = wfJson.nodes.find((o) => String(o.id) === String(n.id));
    const saved = exported.nodes.find((o) => String(o.id) === String(n.id));
    if (!saved) {
      fail(`${tag}: missing`);
      continue;
    }
    const values = saved.widgets_values;
    if (!Array.isArray(values) || values.length !== n.serializableNames.length) {
      fail(`${tag}: ${JSON.stringify(values)} for the widgets ${n.serializableNames.join(", ")}`);
    } else if (orig && JSON.stringify(values) !== JSON.stringify(orig.widgets_values)) {
      fail(`${tag}: widgets_values ${JSON.stringify(values)} differ from the file's ${JSON.stringify(orig.widgets_values)}`);
    }
    if (saved.widgets_values_named && CHART_WIDGET in saved.widgets_values_named) fail(`${tag}: the chart is in widgets_values_named`);
    const api = exportedApi[String(n.id)];
    if (!api) fail(`exported API prompt: node ${n.id} ${n.type} missing`);
    else {
      if (CHART_WIDGET in api.inputs) fail(`exported API prompt: node ${n.id} ${n.type} has the chart widget`);
      const want = apiJson?.[String(n.id)];
      if (want) {
        const a = Object.keys(api.inputs).sort().join(",");
        const b = Object.keys(want.inputs).sort().join(",");
        if (a !== b) fail(`exported API prompt: node ${n.id} ${n.type} inputs [${a}] differ from the API workflow's [${b}]`);
      }
    }
  }
}

async function frames(page, n = 3) {
  for (let i = 0; i < n; i++) await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
}

async function centreOn(page, nodeId) {
  // scale 1, the node near the top-left corner of the canvas; works for both renderers (the Vue node layer follows ds)
  await page.evaluate((id) => {
    const app = window.app;
    const node = app.graph.getNodeById(id);
    const ds = app.canvas.ds;
    ds.scale = 1;
    ds.offset[0] = -node.pos[0] + 360; // clear of the sidebars and floating toolbars
    ds.offset[1] = -node.pos[1] + 130;
    app.canvas.setDirty(true, true);
  }, nodeId);
  await frames(page, 4);
  await sleep(300);
}

async function nodeClip(page, nodeId) {
  return page.evaluate((id) => {
    const app = window.app;
    const node = app.graph.getNodeById(id);
    const el = document.querySelector(`[data-node-id="${id}"]`);
    let r;
    if (el && el.getBoundingClientRect().width > 0) {
      const b = el.getBoundingClientRect();
      r = { x: b.x, y: b.y, w: b.width, h: b.height };
    } else {
      const [bx, by, bw, bh] = node.getBounding();
      const c = app.canvas.canvas.getBoundingClientRect();
      const [x0, y0] = app.canvas.ds.convertOffsetToCanvas([bx, by]);
      const s = app.canvas.ds.scale;
      r = { x: c.x + x0, y: c.y + y0, w: bw * s, h: bh * s };
    }
    const pad = 16;
    const x = Math.max(0, r.x - pad);
    const y = Math.max(0, r.y - pad);
    return { x, y, width: Math.min(window.innerWidth - x, r.w + 2 * pad), height: Math.min(window.innerHeight - y, r.h + 2 * pad) };
  }, nodeId);
}

// Load Ditto Models after its workflow ran: the "runs on" line (web/ditto_devices.js) exists once, holds the node's
// report (its ui "text"), is read-only and not serialized (workflow, API prompt, exports), stays single when the
// node's onExecuted runs again, and the grown node fits its widgets and overlaps no other node; screenshot of each.
async function checkLoaders(page, { phase, dir, wfName, wfJson, apiJson, entry, loadersBefore, exported, exportedApi, others, fail }) {
  const want = wfJson.nodes.filter((n) => n.type === LOADER);
  if (!want.length) return;
  // the "executed" message arrives by websocket; wait for the line
  const t = Date.now();
  let loaders = [];
  while (Date.now() - t < 30000) {
    loaders = await page.evaluate(inspectLoaders, { loader: LOADER, runsOn: RUNS_ON });
    if (loaders.length === want.length && loaders.every((l) => l.count > 0)) break;
    await sleep(500);
  }
  if (loaders.length !== want.length) fail(`${loaders.length} ${LOADER} nodes in the loaded graph, ${want.length} in the file`);
  for (const l of loaders) {
    const tag = `node ${l.id} ${LOADER}`;
    const orig = want.find((o) => String(o.id) === String(l.id));
    const before = loadersBefore.find((b) => String(b.id) === String(l.id));
    const report = entry.outputs?.[String(l.id)]?.text?.[0];
    log(`    ${tag}: output text ${JSON.stringify(report)}; widgets ${JSON.stringify(l.widgetNames)}; size ${l.size.map(Math.round)} (min ${l.minSize?.map(Math.round)}, before the run ${before?.size.map(Math.round)}); ` +
      `element ${l.dom ? `${Math.round(l.dom.height)} high (before the run ${before?.dom ? Math.round(before.dom.height) : "?"}; graph units)` : "none"}`);
    if (before && l.size[1] + 0.5 < before.size[1]) fail(`${tag}: the node shrank from ${before.size[1]} to ${l.size[1]} when the line was added`);
    if (typeof report !== "string" || !report.startsWith("networks on ") || !report.includes("aux ONNX models on")) {
      fail(`${tag}: output text ${JSON.stringify(entry.outputs?.[String(l.id)]?.text)} is not a device report`);
    }
    if (l.count !== 1) {
      fail(`${tag}: ${l.count} "${RUNS_ON}" widgets after the run (expected 1): ${l.widgetNames.join(", ")}`);
      if (!l.count) continue;
    }
    const w = l.widget;
    if (typeof w.value !== "string" || !w.value.startsWith("networks on ") || !w.value.includes("aux ONNX models on")) {
      fail(`${tag}: "${RUNS_ON}" holds ${JSON.stringify(w.value)}`);
    }
    if (typeof report === "string" && w.value !== report) fail(`${tag}: "${RUNS_ON}" holds ${JSON.stringify(w.value)}, the node reported ${JSON.stringify(report)}`);
    if (w.tooltip !== w.value) fail(`${tag}: "${RUNS_ON}" tooltip ${JSON.stringify(w.tooltip)} is not its value`);
    if (w.type !== "text") fail(`${tag}: "${RUNS_ON}" is a ${w.type} widget (expected text)`);
    if (!w.disabled && !w.readOnly) fail(`${tag}: "${RUNS_ON}" is editable (neither disabled nor read-only)`);
    if (!phase.vue && w.displayValue !== null && w.displayValue !== w.value) fail(`${tag}: the canvas draws "${RUNS_ON}" as ${JSON.stringify(w.displayValue)}, not its value`);
    if (w.serialize !== false || w.optSerialize !== false) fail(`${tag}: "${RUNS_ON}" serialize ${w.serialize}, options.serialize ${w.optSerialize} (expected false, false)`);
    if (l.index !== l.widgetNames.length - 1) fail(`${tag}: "${RUNS_ON}" is not the last widget (${l.widgetNames.join(", ")})`);
    // not serialized: the workflow keeps the file's widgets_values (as many as before the run, no report)
    const hasReport = (v) => Array.isArray(v) && v.some((x) => typeof x === "string" && x.startsWith("networks on "));
    for (const [label, values] of [["node.serialize()", l.nodeSerialize], ["graph.serialize()", l.graphSerialize], ["graphToPrompt().workflow", l.workflowWidgetsValues]]) {
      if (!Array.isArray(values)) {
        fail(`${tag}: no widgets_values in ${label}`);
        continue;
      }
      if (hasReport(values)) fail(`${tag}: ${label} widgets_values hold the report: ${JSON.stringify(values)}`);
      if (before?.nodeSerialize && values.length !== before.nodeSerialize.length) fail(`${tag}: ${label} has ${values.length} widgets_values, ${before.nodeSerialize.length} before the run`);
      if (orig && JSON.stringify(values) !== JSON.stringify(orig.widgets_values)) fail(`${tag}: ${label} widgets_values ${JSON.stringify(values)} differ from the file's ${JSON.stringify(orig.widgets_values)}`);
    }
    if (!l.promptInputs) fail(`${tag}: not in the API prompt`);
    else {
      if (RUNS_ON in l.promptInputs) fail(`${tag}: "${RUNS_ON}" is in the API prompt`);
      const api = apiJson?.[String(l.id)];
      if (api) {
        const a = Object.keys(l.promptInputs).sort().join(",");
        const b = Object.keys(api.inputs).sort().join(",");
        if (a !== b) fail(`${tag}: API prompt inputs [${a}] differ from the API workflow's [${b}]`);
      }
    }
    if (exported) {
      const saved = exported.nodes.find((o) => String(o.id) === String(l.id));
      if (!saved) fail(`exported workflow: ${tag} missing`);
      else {
        if (hasReport(saved.widgets_values)) fail(`exported workflow: ${tag} widgets_values hold the report`);
        if (orig && JSON.stringify(saved.widgets_values) !== JSON.stringify(orig.widgets_values)) fail(`exported workflow: ${tag} widgets_values ${JSON.stringify(saved.widgets_values)} differ from the file's ${JSON.stringify(orig.widgets_values)}`);
        if (saved.widgets_values_named && RUNS_ON in saved.widgets_values_named) fail(`exported workflow: ${tag} has "${RUNS_ON}" in widgets_values_named`);
      }
    }
    if (exportedApi) {
      const api = exportedApi[String(l.id)];
      if (!api) fail(`exported API prompt: ${tag} missing`);
      else if (RUNS_ON in api.inputs || Object.values(api.inputs).some((v) => typeof v === "string" && v.startsWith("networks on "))) fail(`exported API prompt: ${tag} holds the report`);
    }
    // the node fits its widgets (canvas: node.size; Vue: the element) and overlaps no other node
    if (l.minSize && l.size[1] + 0.5 < l.minSize[1]) fail(`${tag}: node height ${l.size[1]} is below its minimum ${l.minSize[1]} (the line overflows)`);
    if (w.lastY != null && w.height && w.lastY + w.height > l.size[1] + 1) fail(`${tag}: "${RUNS_ON}" is drawn at y ${w.lastY}+${w.height}, below the node's height ${l.size[1]}`);
    if (phase.vue) {
      if (!l.dom) fail(`${tag}: no node element in the Vue renderer`);
      else {
        const shown = l.dom.fields.filter((f) => f.value === w.value && f.visible);
        if (!shown.length && !l.dom.text.includes(w.value)) fail(`${tag}: the Vue node does not show the "${RUNS_ON}" line (fields ${JSON.stringify(l.dom.fields.map((f) => f.value))})`);
        else if (shown.length && !shown.every((f) => f.readOnly || f.disabled)) fail(`${tag}: the Vue node's "${RUNS_ON}" field is editable`);
        if (shown.length > 1) fail(`${tag}: the Vue node shows the "${RUNS_ON}" line ${shown.length} times`);
      }
    }
    const domRects = await nodeRects(page);
    const useDom = phase.vue && Object.keys(domRects).length >= others.length;
    const box = (id, b) => (useDom ? domRects[String(id)] : b);
    for (const o of others) {
      const a = box(l.id, l.bounding);
      const b = box(o.id, o.bounding);
      if (String(o.id) !== String(l.id) && a && b && overlaps(a, b)) fail(`${tag} overlaps node ${o.id} ${o.type} (${useDom ? "on screen" : "node bounds"}: ${a.map(Math.round)} / ${b.map(Math.round)})`);
    }
    // screenshot
    await centreOn(page, l.id);
    const clip = await nodeClip(page, l.id);
    if (clip.width > 10 && clip.height > 10) await page.screenshot({ path: path.join(dir, `${wfName}-node${l.id}-${LOADER}.png`), clip });
    // read-only in the canvas: a real click on the line opens no edit prompt and changes nothing
    if (!phase.vue) {
      const at = await page.evaluate(([id, runsOn]) => {
        const app = window.app;
        const node = app.graph.getNodeById(id);
        const w = node.widgets.find((x) => x.name === runsOn);
        const h = w.computedHeight ?? window.LiteGraph?.NODE_WIDGET_HEIGHT ?? 20;
        const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] * 0.6, node.pos[1] + (w.last_y ?? w.y) + h / 2]);
        const r = app.canvas.canvas.getBoundingClientRect();
        return { x: r.x + cx, y: r.y + cy };
      }, [l.id, RUNS_ON]);
      await page.mouse.click(at.x, at.y);
      await sleep(400);
      const after = await page.evaluate(([id, runsOn]) => {
        const dialogs = [...document.querySelectorAll(".graphdialog, .litegraph .dialog")].filter((d) => d.checkVisibility?.() ?? true);
        const n = dialogs.length;
        dialogs.forEach((d) => (d.close ? d.close() : d.remove()));
        return { dialogs: n, value: window.app.graph.getNodeById(id).widgets.find((x) => x.name === runsOn)?.value };
      }, [l.id, RUNS_ON]);
      if (after.dialogs) fail(`${tag}: a click on "${RUNS_ON}" opens an edit prompt`);
      if (after.value !== w.value) fail(`${tag}: a click on "${RUNS_ON}" changed it to ${JSON.stringify(after.value)}`);
      await page.keyboard.press("Escape");
    }
    // a second run (onExecuted again, with the same report) must not add a second line
    const again = await page.evaluate(([id, runsOn, text]) => {
      const node = window.app.graph.getNodeById(id);
      node.onExecuted?.({ text: [text] });
      return { count: node.widgets.filter((x) => x.name === runsOn).length, n: node.widgets.length, size: [...node.size] };
    }, [l.id, RUNS_ON, w.value]);
    if (again.count !== 1 || again.n !== l.widgetNames.length) fail(`${tag}: after a second onExecuted ${again.count} "${RUNS_ON}" widgets, ${again.n} widgets (was ${l.widgetNames.length})`);
    if (Math.abs(again.size[1] - l.size[1]) > 0.5) fail(`${tag}: a second onExecuted changed the node height ${l.size[1]} -> ${again.size[1]}`);
  }
}

async function runPhase(browser, url, phase, results) {
  const dir = path.join(CFG.out, phase.name);
  fs.mkdirSync(dir, { recursive: true });
  await setSetting(url, "Comfy.VueNodes.Enabled", phase.vue);
  // no first-run tour; Export downloads at once instead of asking for a file name
  for (const [id, v] of [["Comfy.TutorialCompleted", true], ["Comfy.Validation.Workflows", true], ["Comfy.PromptFilename", false]]) {
    await setSetting(url, id, v).catch(() => {});
  }

  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 }, deviceScaleFactor: CFG.dpr, acceptDownloads: true });
  await context.addInitScript(consoleRecorder);
  await context.addInitScript(pixelStatsSource);
  await context.addInitScript((s) => { window.__bcSeries = s; }, SERIES_RGB);
  const page = await context.newPage();
  const consoleLines = [];
  const pageErrors = [];
  page.on("console", (m) => {
    const loc = m.location();
    consoleLines.push(`[${m.type()}] ${m.text()}${loc?.url ? `  (${loc.url}:${loc.lineNumber})` : ""}`);
  });
  page.on("pageerror", (e) => {
    pageErrors.push(`${e.message}\n${e.stack ?? ""}`);
    consoleLines.push(`[pageerror] ${e.message}\n${e.stack ?? ""}`);
  });

  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(
    () => window.app?.graph && window.app?.canvas && window.app?.extensions?.some?.((e) => e.name === "Ditto.MotionCurves"),
    null,
    { timeout: 120000 },
  );
  await sleep(1500);
  const fe = await page.evaluate(() => ({
    version: window.__COMFYUI_FRONTEND_VERSION__ ?? null,
    vue: window.app.extensionManager?.setting?.get?.("Comfy.VueNodes.Enabled") ?? null,
  }));
  log(`${phase.name}: frontend ${fe.version ?? "?"}, Comfy.VueNodes.Enabled=${fe.vue}`);
  if (phase.vue && fe.vue !== true) {
    // fall back to the frontend's own setting API (the settings endpoint can be read before the store loads)
    await page.evaluate(() => window.app.extensionManager.setting.set("Comfy.VueNodes.Enabled", true));
    await sleep(1000);
  }
  const phaseResult = { phase: phase.name, frontend: fe.version, vue: phase.vue, workflows: [] };
  results.push(phaseResult);

  for (const wfPath of CFG.workflows) {
    const wfName = path.basename(wfPath, ".json");
    const failures = [];
    const fail = (m) => failures.push(m);
    const t0 = Date.now();
    const wfJson = JSON.parse(fs.readFileSync(wfPath, "utf8"));
    const apiPath = CFG.apiDir ? path.join(CFG.apiDir, path.basename(wfPath)) : "";
    const apiJson = apiPath && fs.existsSync(apiPath) ? JSON.parse(fs.readFileSync(apiPath, "utf8")) : null;
    const consoleStart = await page.evaluate(() => window.__bcConsole.length);
    const pageErrorsStart = pageErrors.length;
    let status = "?";
    let cached = 0;
    let executed = 0;
    try {
      await page.evaluate((g) => window.app.loadGraphData(g), structuredClone(wfJson));
      await frames(page, 3);
      let info = await page.evaluate(inspectGraph, { curveTypes: CURVE_TYPES, chartWidget: CHART_WIDGET });
      if (info.unknown.length) fail(`unknown node types: ${info.unknown.join(", ")}`);
      const curveIds = info.nodes.map((n) => n.id);
      const goLive = wfJson.nodes.filter((n) => n.type === GO_LIVE);
      const wantCurves = wfJson.nodes.filter((n) => CURVE_TYPES.includes(n.type)).length;
      if (!curveIds.length && !goLive.length) fail("no curve node in the workflow");
      if (curveIds.length !== wantCurves) fail(`${curveIds.length} curve nodes in the loaded graph, ${wantCurves} in the file`);
      checkSerialization(wfJson, apiJson, info, "after loading", fail);
      const loadersBefore = await page.evaluate(inspectLoaders, { loader: LOADER, runsOn: RUNS_ON });
      for (const l of loadersBefore) {
        if (l.count) fail(`node ${l.id} ${LOADER}: a "${RUNS_ON}" widget before any run`);
      }
      if (curveIds.length) {
        // before any data the chart takes no room: the node looks as saved
        await centreOn(page, curveIds[0]);
        const clip = await nodeClip(page, curveIds[0]);
        if (clip.width > 10 && clip.height > 10) await page.screenshot({ path: path.join(dir, `${wfName}-node${curveIds[0]}-before-run.png`), clip });
        const first = info.nodes[0];
        if (first.rect && first.rect.clientH > 0 && first.rect.visible) fail(`node ${first.id} ${first.type}: the chart takes ${first.rect.clientH} px before any data`);
      }

      // queue and wait for the history entry
      const before = new Set(Object.keys(await getJSON(`${url}/api/history?max_items=1000`)));
      await page.evaluate(() => window.app.queuePrompt(0));
      let promptId = null;
      let entry = null;
      const deadline = Date.now() + CFG.timeoutS * 1000;
      while (Date.now() < deadline) {
        const hist = await getJSON(`${url}/api/history?max_items=1000`);
        const fresh = Object.keys(hist).filter((k) => !before.has(k));
        if (fresh.length) {
          promptId = fresh[0];
          entry = hist[promptId];
          break;
        }
        if (server && server.exitCode !== null) throw new Error("ComfyUI exited during execution");
        await sleep(2000);
      }
      if (!entry) throw new Error(`no result within ${CFG.timeoutS} s`);
      status = entry.status?.status_str ?? "?";
      for (const [kind, msg] of entry.status?.messages ?? []) {
        if (kind === "execution_error") {
          fail(`execution error in node ${msg.node_id} ${msg.node_type}: ${msg.exception_type}: ${msg.exception_message}`);
        }
        if (kind === "execution_cached") cached = msg.nodes?.length ?? 0;
      }
      executed = Object.keys(entry.outputs ?? {}).length;
      if (status !== "success") fail(`execution status ${status}`);
      // Go Live: the page's path in its output (ui.text), and the avatar listed by the page's API on this server
      for (const n of goLive) {
        const name = n.widgets_values[0];
        const want = `${LIVE_PREFIX}/?avatar=${name}`;
        const text = entry.outputs?.[String(n.id)]?.text;
        if (!Array.isArray(text) || text[0] !== want) fail(`node ${n.id} ${GO_LIVE}: output text ${JSON.stringify(text)}, expected ["${want}"]`);
        try {
          const ids = (await getJSON(`${url}${LIVE_PREFIX}/avatars`)).avatars.map((a) => a.id);
          if (!ids.includes(name)) fail(`node ${n.id} ${GO_LIVE}: avatar ${name} not in ${LIVE_PREFIX}/avatars (${ids})`);
        } catch (e) {
          fail(`node ${n.id} ${GO_LIVE}: ${e.message}`);
        }
        // web/ditto_live.js: after the run the node has an "Open the live page" button pointing at that path
        await frames(page, 3);
        const button = await page.evaluate((id) => {
          const w = window.app.graph.getNodeById(id)?.widgets?.find((x) => x.name === "Open the live page");
          return w ? { type: w.type, href: w.href ?? null } : null;
        }, n.id);
        if (!button || button.type !== "button" || !String(button.href).endsWith(want)) {
          fail(`node ${n.id} ${GO_LIVE}: no "Open the live page" button for ${want} (got ${JSON.stringify(button)})`);
        }
        log(`    ${GO_LIVE} node ${n.id}: output ${JSON.stringify(text)}; button ${JSON.stringify(button)}`);
      }

      // the curves arrive by websocket ("executed") before the prompt ends; give the page time to draw them
      const tWait = Date.now();
      while (Date.now() - tWait < 30000) {
        const have = await page.evaluate((ids) => ids.filter((id) => !!window.app.graph.getNodeById(id)?.dittoCurves).length, curveIds);
        if (have === curveIds.length) break;
        await sleep(500);
      }
      await frames(page, 5);
      await sleep(500);

      // overview screenshot
      await page.evaluate(async () => {
        const cmd = window.app.extensionManager?.command;
        if (cmd?.execute) await cmd.execute("Comfy.Canvas.FitView");
        else window.app.canvas.ds.reset?.();
        window.app.canvas.setDirty(true, true);
      }).catch(() => {});
      await frames(page, 5);
      await sleep(800);
      const overview = path.join(dir, `${wfName}.png`);
      await page.screenshot({ path: overview });

      info = await page.evaluate(inspectGraph, { curveTypes: CURVE_TYPES, chartWidget: CHART_WIDGET });
      checkSerialization(wfJson, apiJson, info, "after execution", fail);
      // save it as a user would (Workflow > Export, Export (API)) now that the charts hold data
      let exported = null;
      let exportedApi = null;
      try {
        exported = await exportVia(page, "Comfy.ExportWorkflow");
        exportedApi = await exportVia(page, "Comfy.ExportWorkflowAPI");
        fs.writeFileSync(path.join(dir, `${wfName}.exported.json`), JSON.stringify(exported, null, 1));
        fs.writeFileSync(path.join(dir, `${wfName}.exported-api.json`), JSON.stringify(exportedApi, null, 1));
        checkExported(wfJson, apiJson, info, exported, exportedApi, fail);
      } catch (e) {
        fail(`cannot export the workflow through the frontend: ${e.message.split("\n")[0]}`);
      }
      // overlap of a grown curve node with any other node: the Vue renderer lays nodes out as DOM elements that can
      // be taller than node.size, so there the elements' rectangles count; the canvas renderer draws node.size
      const domRects = await nodeRects(page);
      const useDom = phase.vue && Object.keys(domRects).length >= info.others.length;
      const boxOf = (n) => (useDom ? domRects[String(n.id)] : n.bounding);
      for (const n of info.nodes) {
        for (const o of info.others) {
          const a = boxOf(n);
          const b = boxOf(o);
          if (String(o.id) !== String(n.id) && a && b && overlaps(a, b)) {
            fail(`node ${n.id} ${n.type} overlaps node ${o.id} ${o.type} (${useDom ? "on screen" : "node bounds"}: ${a.map(Math.round)} / ${b.map(Math.round)})`);
          }
        }
      }
      if (phase.vue && !useDom) fail(`the Vue renderer shows ${Object.keys(domRects).length} node elements for ${info.others.length} nodes`);

      // web/ditto_devices.js: after the run every Load Ditto Models node has one read-only, unsaved "runs on" line
      await checkLoaders(page, { phase, dir, wfName, wfJson, apiJson, entry, loadersBefore, exported, exportedApi, others: info.others, fail });

      for (const n of goLive) {
        await centreOn(page, n.id);
        const clip = await nodeClip(page, n.id);
        if (clip.width > 10 && clip.height > 10) await page.screenshot({ path: path.join(dir, `${wfName}-node${n.id}-${GO_LIVE}.png`), clip });
      }
      // per curve node: centre it at scale 1, read the chart back, screenshot it
      for (const id of curveIds) {
        await centreOn(page, id);
        const one = (await page.evaluate(inspectGraph, { curveTypes: CURVE_TYPES, chartWidget: CHART_WIDGET })).nodes.find((n) => String(n.id) === String(id));
        const tag = `node ${id} ${one.type}`;
        const clip = await nodeClip(page, id);
        const shot = path.join(dir, `${wfName}-node${id}-${one.type}.png`);
        if (clip.width > 10 && clip.height > 10) await page.screenshot({ path: shot, clip });
        if (!one.hasCurves) {
          fail(`${tag}: no ditto_motion payload arrived (onExecuted)`);
          continue;
        }
        if (!one.canvasFound) {
          fail(`${tag}: no chart canvas [data-ditto-chart] in its widgets`);
          continue;
        }
        const r = one.rect;
        if (!r || !r.visible || r.w < 100 || r.h < 60) {
          fail(`${tag}: the chart is not shown (${JSON.stringify(r)})`);
          continue;
        }
        if (r.clientH < 170 - 24) fail(`${tag}: the chart is ${r.clientH} px high (expected at least 170: squeezed?)`);
        if (one.size[1] + 0.5 < one.minSize[1]) fail(`${tag}: node height ${one.size[1]} is below its minimum ${one.minSize[1]}`);
        const p = one.pixels;
        if (!p) {
          fail(`${tag}: the chart canvas has no pixels`);
          continue;
        }
        const wantW = Math.round(r.clientW * info.dpr);
        if (p.backing[0] < wantW - 2) fail(`${tag}: canvas backing ${p.backing[0]} px wide for ${r.clientW} CSS px at devicePixelRatio ${info.dpr}`);
        if (p.opaqueShare < 0.9) fail(`${tag}: only ${(100 * p.opaqueShare).toFixed(0)}% of the chart canvas is drawn`);
        if (p.colours < 8) fail(`${tag}: the chart canvas is (nearly) uniform (${p.colours} colours)`);
        const seriesSeen = Object.entries(p.near).filter(([, c]) => c >= 20).map(([k]) => k);
        if (seriesSeen.length < 3) fail(`${tag}: series colours in the chart canvas: ${JSON.stringify(p.near)}`);
        // widen the node: the chart must follow (redraw at the new width, still devicePixelRatio sharp); then restore
        await page.evaluate((nodeId) => {
          const node = window.app.graph.getNodeById(nodeId);
          node.setSize([node.size[0] + 120, node.size[1]]);
          window.app.canvas.setDirty(true, true);
        }, id);
        await frames(page, 6);
        await sleep(400);
        const grown = (await page.evaluate(inspectGraph, { curveTypes: CURVE_TYPES, chartWidget: CHART_WIDGET })).nodes.find((n) => String(n.id) === String(id));
        if (!grown.rect || grown.rect.clientW < r.clientW + 60) {
          fail(`${tag}: the chart did not widen with the node (${r.clientW} -> ${grown.rect?.clientW} CSS px)`);
        } else if (!grown.pixels || grown.pixels.backing[0] < Math.round(grown.rect.clientW * info.dpr) - 2 || grown.pixels.opaqueShare < 0.9) {
          fail(`${tag}: the chart was not redrawn after a resize (${grown.rect.clientW} CSS px, backing ${grown.pixels?.backing})`);
        }
        await frames(page, 2);
        const shotResized = path.join(dir, `${wfName}-node${id}-${one.type}-widened.png`);
        const clip2 = await nodeClip(page, id);
        if (clip2.width > 10 && clip2.height > 10) await page.screenshot({ path: shotResized, clip: clip2 });
        await page.evaluate(([nodeId, size]) => {
          window.app.graph.getNodeById(nodeId).setSize(size);
          window.app.canvas.setDirty(true, true);
        }, [id, one.size]);
        await frames(page, 4);

        // what the screen shows: a screenshot of the canvas element itself
        const elShot = await page.locator("canvas[data-ditto-chart]").evaluateAll((els, nodeId) => {
          const node = window.app.graph.getNodeById(nodeId);
          const el = node.widgets.find((w) => w.name === "ditto_motion_chart")?.element?.querySelector("canvas");
          els.forEach((e) => e.removeAttribute("data-bc-target"));
          if (el) el.setAttribute("data-bc-target", "1");
          return !!el;
        }, id);
        if (elShot) {
          const buf = await page.locator('canvas[data-bc-target="1"]').screenshot();
          const s = await screenshotStats(page, buf);
          const seen = Object.entries(s.near).filter(([, c]) => c >= 10).map(([k]) => k);
          if (s.colours < 8 || seen.length < 3) fail(`${tag}: the chart does not show on screen (screenshot: ${s.colours} colours, series ${JSON.stringify(s.near)})`);
        }
      }
    } catch (e) {
      fail(`check aborted: ${e.message}`);
    }

    // console messages attributable to the pack
    const msgs = (await page.evaluate((i) => window.__bcConsole.slice(i), consoleStart).catch(() => [])) ?? [];
    const ours = (s) => /ditto/i.test(s);
    for (const m of msgs) {
      if (ours(m.text) || ours(m.stack)) fail(`console.${m.level} from the pack: ${m.text.split("\n")[0].slice(0, 300)}`);
    }
    for (const e of pageErrors.slice(pageErrorsStart)) {
      if (ours(e)) fail(`page error from the pack: ${e.split("\n")[0].slice(0, 300)}`);
    }

    const secs = (Date.now() - t0) / 1000;
    const res = { workflow: wfName, ok: failures.length === 0, status, secs, cachedNodes: cached, outputs: executed, failures };
    phaseResult.workflows.push(res);
    log(`${phase.name} ${wfName}: ${res.ok ? "PASS" : "FAIL"} (${status}, ${secs.toFixed(0)} s, ${cached} cached nodes)`);
    for (const f of failures) log(`    ${f}`);
  }

  fs.writeFileSync(path.join(dir, "console.log"), consoleLines.join("\n") + "\n");
  // every console.warn / console.error with the stack it was called from (to see who caused it)
  const recorded = (await page.evaluate(() => window.__bcConsole).catch(() => [])) ?? [];
  fs.writeFileSync(path.join(dir, "console-warnings-with-stacks.log"),
    recorded.map((m) => `[${m.level}] ${m.text}\n${m.stack}\n`).join("\n"));
  await context.close();
}

// ---------------------------------------------------------------- the live phase

// Queue an API prompt through ComfyUI's /prompt and wait for its history entry.
async function runPrompt(url, prompt, timeoutS) {
  const r = await fetch(`${url}/api/prompt`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt, client_id: "ditto-browser-check" }),
  });
  const body = await r.text();
  if (!r.ok) throw new Error(`POST /prompt: HTTP ${r.status}: ${body.slice(0, 500)}`);
  const { prompt_id: id } = JSON.parse(body);
  const deadline = Date.now() + timeoutS * 1000;
  while (Date.now() < deadline) {
    const hist = await getJSON(`${url}/api/history/${id}`);
    if (hist[id]) return hist[id];
    if (server && server.exitCode !== null) throw new Error("ComfyUI exited during execution");
    await sleep(1000);
  }
  throw new Error(`prompt ${id}: no result within ${timeoutS} s`);
}

function promptFailures(entry) {
  const out = [];
  for (const [kind, msg] of entry.status?.messages ?? []) {
    if (kind === "execution_error") out.push(`execution error in node ${msg.node_id} ${msg.node_type}: ${msg.exception_type}: ${msg.exception_message}`);
  }
  if (entry.status?.status_str !== "success") out.push(`execution status ${entry.status?.status_str}`);
  return out;
}

async function runLivePhase(url, phase, results) {
  const dir = path.join(CFG.out, phase.name);
  fs.mkdirSync(dir, { recursive: true });
  const phaseResult = { phase: phase.name, frontend: null, vue: false, live: true, workflows: [] };
  results.push(phaseResult);
  const wfName = path.basename(CFG.liveWorkflow || "Live avatar from a portrait.json", ".json");
  const t0 = Date.now();
  const failures = [];
  const fail = (m) => failures.push(m);
  const checks = [];
  try {
    if (!CFG.liveWorkflow || !CFG.liveWav) throw new Error("DITTO_BC_LIVE_WORKFLOW / DITTO_BC_LIVE_WAV are not set (run it through run.sh)");
    const api = JSON.parse(fs.readFileSync(path.join(CFG.apiDir, path.basename(CFG.liveWorkflow)), "utf8"));
    const liveId = Object.keys(api).find((k) => api[k].class_type === GO_LIVE);
    if (!liveId) throw new Error(`no ${GO_LIVE} node in the live workflow`);
    const name = api[liveId].inputs.name;
    const other = `${name}-other`;
    // 1. another avatar first (so that the page lists two and its ?avatar= has to choose), then the workflow as shipped
    for (const avatar of [other, name]) {
      const p = structuredClone(api);
      p[liveId].inputs.name = avatar;
      const tq = Date.now();
      const entry = await runPrompt(url, p, CFG.timeoutS);
      const bad = promptFailures(entry);
      const want = `${LIVE_PREFIX}/?avatar=${avatar}`;
      const text = entry.outputs?.[liveId]?.text;
      if (Array.isArray(text) ? text[0] !== want : true) bad.push(`${GO_LIVE} output text ${JSON.stringify(text)}, expected ["${want}"]`);
      const line = `Go Live in ComfyUI (POST /prompt, avatar "${avatar}"): ${bad.length ? bad.join("; ") : `${want} after ${((Date.now() - tq) / 1000).toFixed(0)} s`}`;
      console.log(`${bad.length ? "FAIL" : "PASS"} ${line}`);
      checks.push({ ok: !bad.length, name: line });
      bad.forEach(fail);
    }
    // 2. the page: live_check.cjs in its page mode (its own Chromium with the fake microphone)
    const page = `${url}${LIVE_PREFIX}/?avatar=${encodeURIComponent(name)}`;
    log(`${phase.name}: ${page}`);
    const childEnv = {
      ...process.env,
      DITTO_LC_PAGE: page,
      DITTO_LC_AVATAR: name,
      DITTO_LC_OTHER_AVATAR: other,
      DITTO_LC_WAV: CFG.liveWav,
      DITTO_LC_OUT: dir,
      DITTO_LC_CHROMIUM: CFG.chromium,
      DITTO_LC_NODE_MODULES: NODE_MODULES,
      DITTO_LC_TIMEOUT: String(CFG.liveTimeoutS),
      DITTO_LC_MIN_FRAMES: String(CFG.liveFrames),
      DITTO_LC_PORTRAIT: path.join(__dirname, "..", "..", "example_inputs", "ditto_portrait.jpg"),
    };
    const rc = await new Promise((resolve) => {
      const child = spawn(process.execPath, [CFG.liveCheck], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
      let buf = "";
      const onData = (d) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          console.log(`  ${line}`);
          const m = /^(PASS|FAIL) (.*)$/.exec(line);
          if (m) {
            checks.push({ ok: m[1] === "PASS", name: m[2] });
            if (m[1] === "FAIL") fail(m[2]);
          }
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.on("close", (code) => resolve(code));
    });
    if (rc !== 0 && !failures.length) fail(`live_check.cjs exited with ${rc}`);
    if (!checks.some((c) => /^Talk .*frames are drawn/.test(c.name) && c.ok)) fail("no frames drawn on the live page");
  } catch (e) {
    fail(`live phase aborted: ${e.message}`);
  }
  const secs = (Date.now() - t0) / 1000;
  const res = { workflow: `${wfName} (live page)`, ok: failures.length === 0, status: failures.length ? "failed" : "success", secs, checks, failures };
  phaseResult.workflows.push(res);
  log(`${phase.name} ${res.workflow}: ${res.ok ? "PASS" : "FAIL"} (${secs.toFixed(0)} s, ${checks.length} checks)`);
  for (const f of failures) log(`    ${f}`);
}

async function main() {
  fs.mkdirSync(CFG.out, { recursive: true });
  const frontRoot = path.join(CFG.out, "frontend-root");
  // DITTO_BC_URL: use a server that is already running (for working on the check; its frontend is not swapped)
  const external = process.env.DITTO_BC_URL || "";
  if (!external) swapFrontend(frontRoot, CFG.phases[0].staticDir);
  const url = external || (await startServer(frontRoot));
  const browser = await chromium.launch({
    executablePath: CFG.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
  const results = [];
  let current = CFG.phases[0].staticDir;
  try {
    for (const phase of CFG.phases) {
      if (!external && phase.staticDir !== current) {
        swapFrontend(frontRoot, phase.staticDir);
        current = phase.staticDir;
      }
      if (phase.live) await runLivePhase(url, phase, results);
      else await runPhase(browser, url, phase, results);
    }
  } finally {
    await browser.close().catch(() => {});
    stopServer();
  }
  fs.writeFileSync(path.join(CFG.out, "results.json"), JSON.stringify(results, null, 2));
  console.log("\nSummary");
  let ok = true;
  for (const p of results) {
    for (const w of p.workflows) {
      ok = ok && w.ok;
      console.log(`  ${w.ok ? "PASS" : "FAIL"}  ${p.phase.padEnd(24)} frontend ${String(p.frontend).padEnd(8)} ${p.live ? "live   " : p.vue ? "vue    " : "classic"}  ${w.workflow}`);
    }
  }
  const nWf = results.reduce((a, p) => a + p.workflows.length, 0);
  const nLive = CFG.phases.filter((p) => p.live).length;
  if (nWf !== (CFG.phases.length - nLive) * CFG.workflows.length + nLive) ok = false;
  console.log(`\nScreenshots and logs: ${CFG.out}`);
  return ok ? 0 : 1;
}

main().then(
  (rc) => process.exit(rc),
  (e) => {
    console.error(`browser check failed: ${e.stack ?? e}`);
    stopServer();
    process.exit(2);
  },
);
