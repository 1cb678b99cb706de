// ComfyUI-Ditto: draws a DITTO_MOTION on its node after execution, as a DOM widget.
//
// The DiT Motion Sampler, Edit Motion, Load Motion, Save Motion, Extract Driving Motion and Mix Motion nodes return
//   {"ui": {"ditto_motion": [{frames, fps, step, yaw[], pitch[], roll[], mouth[], edits[{start, end, label}], saved?,
//                             warnings?[text]}]}}
// (see ditto_core.motion.curves.motion_curves). This extension keeps the last payload on the node and draws, below the
// widgets: yaw / pitch / roll in degrees over time, the mouth activity (mean offset of the lip keypoints'
// expression from the source) in a lower band, the edited frame ranges shaded and labelled, a legend, the time axis,
// where Save Motion wrote the file, and the warnings (Edit Motion: a frame range past the clip; Extract Driving Motion:
// frames without a face; Mix Motion: motions of different lengths) in orange.
//
// The chart is a <canvas data-ditto-chart> inside a DOM widget (node.addDOMWidget), not a drawing in
// onDrawForeground: DOM widgets are mounted by both the classic LiteGraph canvas renderer and the Vue node renderer
// ("Nodes 2.0"), which does not run canvas foreground drawing. The widget takes no height until data arrives; then
// the node grows to fit it. It redraws when its element is resized and backs the canvas with devicePixelRatio (times
// the canvas zoom) pixels, so it stays sharp on HiDPI screens.
//
// Nothing here is saved in the workflow or sent to the server: the widget is added last, after the node's own
// widgets, and is marked `serialize: false` twice over (widget.serialize skips it in the workflow's widgets_values,
// options.serialize skips it in the API prompt), so the saved widget order and the prompt are unchanged.
import { app } from "../../scripts/app.js";

const NODE_TYPES = new Set([
  "DittoMotionSampler", "DittoEditMotion", "DittoLoadMotion", "DittoSaveMotion", "DittoExtractDrivingMotion",
  "DittoMixMotion",
]);
const WIDGET_NAME = "ditto_motion_chart";
const CHART_H = 170; // CSS px of the chart (the widget's height once there is data)
const MIN_NODE_W = 320;
const COLORS = { yaw: "#f0a030", pitch: "#40c0e0", roll: "#80d060", mouth: "#e060a0" };

const classOf = (node) => node.comfyClass ?? node.constructor?.comfyClass ?? node.type;

function seriesRange(curves) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const key of ["yaw", "pitch", "roll"]) {
    for (const v of curves[key] || []) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!isFinite(lo)) return [-10, 10];
  const mid = (lo + hi) / 2;
  const half = Math.max((hi - lo) / 2, 5) * 1.1; // at least +-5.5 degrees
  return [mid - half, mid + half];
}

function drawLine(ctx, values, x0, w, yOf, color) {
  if (!values || values.length === 0) return;
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const x = x0 + (n === 1 ? 0 : (i / (n - 1)) * w);
    const y = yOf(values[i]);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.stroke();
}

// The first of the texts that fits in maxW px, else the last one cut short with "…" (or "" when nothing fits).
function fitText(ctx, texts, maxW) {
  for (const t of texts) if (ctx.measureText(t).width <= maxW) return t;
  let t = texts[texts.length - 1];
  while (t.length > 1 && ctx.measureText(t + "…").width > maxW) t = t.slice(0, -1);
  return t.length > 1 ? t + "…" : "";
}

// Draws the chart into a w x h (CSS px) area at the origin of ctx.
function drawCurves(ctx, w, h, curves) {
  const frames = Math.max(1, curves.frames || 1);
  const fps = curves.fps || 25;
  const poseH = Math.round((h - 34) * 0.68);
  const mouthH = h - 34 - poseH - 6;
  const poseTop = 16;
  const mouthTop = poseTop + poseH + 6;
  const xOfFrame = (f) => (f / frames) * w;

  ctx.fillStyle = "rgba(0,0,0,0.35)";
  ctx.fillRect(0, 0, w, h);

  // edited ranges (clipped to the clip), then their labels: ranges that start together (a whole-clip edit and a
  // first-second edit) put their labels in separate rows instead of on top of each other
  ctx.font = "10px sans-serif";
  const ranges = (curves.edits || []).map((e) => ({
    label: e.label,
    x0: xOfFrame(Math.max(0, Math.min(frames, e.start))),
    x1: xOfFrame(Math.max(0, Math.min(frames, e.end))),
  }));
  ranges.forEach((r, k) => {
    if (r.x1 <= r.x0 && r.x0 >= w) return; // starts after the end of the clip
    ctx.fillStyle = k % 2 ? "rgba(255,255,255,0.08)" : "rgba(255,220,120,0.10)";
    ctx.fillRect(r.x0, poseTop, Math.max(1, r.x1 - r.x0), poseH + 6 + mouthH);
  });
  const rowEnds = []; // right end of the last label in each row
  ctx.fillStyle = "rgba(255,255,255,0.55)";
  for (const r of ranges) {
    if (!r.label || r.x1 - r.x0 <= 30) continue;
    const text = fitText(ctx, [r.label], Math.min(r.x1 - r.x0 - 4, 220));
    if (!text) continue;
    let row = rowEnds.findIndex((end) => end <= r.x0);
    if (row < 0) {
      if (rowEnds.length >= 3) continue;
      row = rowEnds.push(0) - 1;
    }
    rowEnds[row] = r.x0 + ctx.measureText(text).width + 8;
    ctx.fillText(text, r.x0 + 2, poseTop + 10 + row * 12);
  }

  // pose
  const [lo, hi] = seriesRange(curves);
  const yOfDeg = (v) => poseTop + poseH - ((v - lo) / (hi - lo)) * poseH;
  if (lo < 0 && hi > 0) {
    ctx.strokeStyle = "rgba(255,255,255,0.15)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, yOfDeg(0));
    ctx.lineTo(w, yOfDeg(0));
    ctx.stroke();
  }
  for (const key of ["roll", "pitch", "yaw"]) drawLine(ctx, curves[key], 0, w, yOfDeg, COLORS[key]);

  // mouth
  const mouth = curves.mouth || [];
  const mMax = Math.max(1e-6, ...mouth);
  drawLine(ctx, mouth, 0, w, (v) => mouthTop + mouthH - (v / mMax) * mouthH, COLORS.mouth);

  // legend and axis
  ctx.font = "11px sans-serif";
  let x = 4;
  for (const key of ["yaw", "pitch", "roll", "mouth"]) {
    ctx.fillStyle = COLORS[key];
    ctx.fillText(key, x, 11);
    x += ctx.measureText(key).width + 10;
  }
  ctx.fillStyle = "rgba(255,255,255,0.6)";
  ctx.fillText(`${hi.toFixed(0)}° … ${lo.toFixed(0)}°`, x + 4, 11);
  const secs = frames / fps;
  ctx.fillText("0 s", 2, h - 4);
  const end = `${secs.toFixed(1)} s · ${frames} frames`;
  const endW = ctx.measureText(end).width;
  ctx.fillText(end, w - endW - 2, h - 4);
  if (curves.saved && curves.saved.filename) {
    // between "0 s" and the end time: the full path, else the file name, else the file name cut short
    const file = curves.saved.filename;
    const full = `saved ${curves.saved.subfolder ? curves.saved.subfolder + "/" : ""}${file}`;
    const x0 = 2 + ctx.measureText("0 s").width + 10;
    const s = fitText(ctx, [full, `saved ${file}`, file], w - endW - 12 - x0);
    if (s) ctx.fillText(s, x0, h - 4);
  }

  // warnings (Edit Motion, Extract Driving Motion, Mix Motion), one line each over the pose band, on a dark strip
  (curves.warnings || []).slice(0, 2).forEach((warning, k) => {
    const y = poseTop + poseH - 6 - k * 15;
    const text = fitText(ctx, [`⚠ ${warning}`], w - 8);
    if (!text) return;
    ctx.fillStyle = "rgba(0,0,0,0.7)";
    ctx.fillRect(2, y - 11, ctx.measureText(text).width + 6, 14);
    ctx.fillStyle = "#ffb040";
    ctx.fillText(text, 5, y);
  });
}

// The canvas zoom the element is shown at (CSS transforms of the classic canvas overlay or the Vue node layer).
function zoomOf(el) {
  const cssW = el.clientWidth;
  if (!cssW) return 1;
  const shown = el.getBoundingClientRect().width;
  return shown > 0 ? shown / cssW : 1;
}

// The charts on the page, so that a zoom (wheel) or a window change (resize, moving to a screen of another pixel ratio)
// can re-check their backing resolution. The Vue node renderer calls no per-frame hook of a DOM widget.
const charts = new Set();
let recheckTimer = 0;
function recheckSoon() {
  clearTimeout(recheckTimer);
  recheckTimer = setTimeout(() => {
    for (const chart of charts) chart.checkBacking();
  }, 150);
}
window.addEventListener("wheel", recheckSoon, { passive: true, capture: true });
window.addEventListener("resize", recheckSoon, { passive: true });

// One chart per node: the DOM widget, its canvas and the redraw logic.
class MotionChart {
  constructor(node) {
    this.node = node;
    this.curves = null;
    this.pending = false;
    this.backing = ""; // "w x h @ ratio" of the last draw, to skip redundant redraws

    this.container = document.createElement("div");
    this.container.className = "ditto-motion-chart";
    Object.assign(this.container.style, {
      boxSizing: "border-box",
      width: "100%",
      height: "100%",
      overflow: "hidden",
      pointerEvents: "none", // a picture: let clicks and drags reach the canvas / node
    });
    this.canvas = document.createElement("canvas");
    this.canvas.dataset.dittoChart = classOf(node) || "";
    // hidden until there is data: the container may span its parent while the widget has no height
    Object.assign(this.canvas.style, { display: "none", width: "100%", height: "100%" });
    this.container.append(this.canvas);

    const hasData = () => !!this.curves;
    this.widget = node.addDOMWidget(WIDGET_NAME, "ditto_motion_chart", this.container, {
      serialize: false, // not in the API prompt
      hideOnZoom: false,
      hideInPanel: true,
      getValue: () => undefined,
      setValue: () => {},
      getMinHeight: () => (hasData() ? CHART_H : 0),
      getMaxHeight: () => (hasData() ? undefined : 0), // with data: fill the node's free height
      onDraw: () => this.checkBacking(), // classic renderer: called on every canvas frame
    });
    this.widget.serialize = false; // not in the workflow's widgets_values
    this.widget.serializeValue = () => undefined;
    // Newer frontends size DOM widgets through computeLayoutSize; keep it in step with the options above.
    this.widget.computeLayoutSize = () =>
      hasData() ? { minHeight: CHART_H, minWidth: 0 } : { minHeight: 0, maxHeight: 0, minWidth: 0 };

    this.resizeObserver = new ResizeObserver(() => this.schedule());
    this.resizeObserver.observe(this.container);
    charts.add(this);
  }

  setCurves(curves) {
    this.curves = curves;
    this.container.style.minHeight = `${CHART_H}px`;
    this.canvas.style.display = "block";
    this.fitNode();
    this.schedule();
  }

  // Grow the node (never shrink it) so that its widgets and the chart fit.
  fitNode() {
    const node = this.node;
    const need = node.computeSize ? node.computeSize() : node.size;
    const w = Math.max(node.size[0], need[0], MIN_NODE_W);
    const h = Math.max(node.size[1], need[1]);
    if (w !== node.size[0] || h !== node.size[1]) node.setSize([w, h]);
    node.setDirtyCanvas?.(true, true);
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw(true);
    });
  }

  checkBacking() {
    if (this.curves && this.backingKey() !== this.backing) this.schedule();
  }

  // Canvas pixels per CSS pixel: devicePixelRatio, times the zoom when zoomed in (never fewer than the screen's).
  backingKey() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const ratio = Math.max(dpr, Math.min(4, dpr * zoomOf(c)));
    return `${c.clientWidth}x${c.clientHeight}@${ratio.toFixed(2)}`;
  }

  draw(force) {
    const c = this.canvas;
    const key = this.backingKey();
    if (!force && key === this.backing) return;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (!this.curves || w < 60 || h < 40) {
      // hidden, collapsed or no data yet: nothing to show
      if (c.width !== 0) c.width = 0;
      this.backing = "";
      return;
    }
    const ratio = parseFloat(key.split("@")[1]);
    c.width = Math.round(w * ratio);
    c.height = Math.round(h * ratio);
    const ctx = c.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    try {
      drawCurves(ctx, w, h, this.curves);
    } catch (e) {
      console.warn("Ditto: cannot draw the motion curves", e);
    }
    this.backing = key;
  }

  remove() {
    this.resizeObserver.disconnect();
    charts.delete(this);
  }
}

app.registerExtension({
  name: "Ditto.MotionCurves",

  nodeCreated(node) {
    if (!NODE_TYPES.has(classOf(node)) || node.dittoChart) return;
    node.dittoChart = new MotionChart(node);
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_TYPES.has(nodeData.name)) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const r = onExecuted?.apply(this, arguments);
      const curves = message?.ditto_motion?.[0];
      if (curves) {
        this.dittoCurves = curves;
        this.dittoChart?.setCurves(curves);
      }
      return r;
    };

    const onRemoved = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      this.dittoChart?.remove();
      return onRemoved?.apply(this, arguments);
    };
  },
});
