// ComfyUI-Ditto: draws a DITTO_MOTION on its node after execution.
//
// The DiT Motion Sampler, Edit Motion, Load Motion and Save Motion nodes return
//   {"ui": {"ditto_motion": [{frames, fps, step, yaw[], pitch[], roll[], mouth[], edits[{start, end, label}], saved?}]}}
// (see ditto_core.motion.curves.motion_curves). This extension keeps the last payload on the node and draws, below the
// widgets: yaw / pitch / roll in degrees over time, the mouth activity (mean offset of the lip keypoints'
// expression from the source) in a lower band, and the edited frame ranges shaded. Nothing here is saved in the
// workflow (no widgets are added), so the saved widget order is unaffected.
import { app } from "../../scripts/app.js";

const NODE_TYPES = new Set(["DittoMotionSampler", "DittoEditMotion", "DittoLoadMotion", "DittoSaveMotion"]);
const CHART_H = 170;
const PAD = 8;
const COLORS = { yaw: "#f0a030", pitch: "#40c0e0", roll: "#80d060", mouth: "#e060a0" };

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

function drawCurves(ctx, node, curves) {
  const w = node.size[0] - 2 * PAD;
  const top = node.size[1] - CHART_H - PAD;
  if (w < 60 || top < 0) return;
  const frames = Math.max(1, curves.frames || 1);
  const fps = curves.fps || 25;
  const poseH = Math.round((CHART_H - 34) * 0.68);
  const mouthH = CHART_H - 34 - poseH - 6;
  const poseTop = top + 16;
  const mouthTop = poseTop + poseH + 6;
  const xOfFrame = (f) => PAD + (f / frames) * w;

  ctx.save();
  ctx.fillStyle = "rgba(0,0,0,0.35)";
  ctx.fillRect(PAD, top, w, CHART_H);

  // edited ranges
  ctx.font = "10px sans-serif";
  (curves.edits || []).forEach((e, k) => {
    const x0 = xOfFrame(e.start);
    const x1 = xOfFrame(e.end);
    ctx.fillStyle = k % 2 ? "rgba(255,255,255,0.08)" : "rgba(255,220,120,0.10)";
    ctx.fillRect(x0, poseTop, Math.max(1, x1 - x0), poseH + 6 + mouthH);
    if (e.label && x1 - x0 > 30) {
      ctx.fillStyle = "rgba(255,255,255,0.55)";
      const label = e.label.length > 40 ? e.label.slice(0, 39) + "…" : e.label;
      ctx.save();
      ctx.beginPath();
      ctx.rect(x0, poseTop, x1 - x0, 14);
      ctx.clip();
      ctx.fillText(label, x0 + 2, poseTop + 10);
      ctx.restore();
    }
  });

  // pose
  const [lo, hi] = seriesRange(curves);
  const yOfDeg = (v) => poseTop + poseH - ((v - lo) / (hi - lo)) * poseH;
  if (lo < 0 && hi > 0) {
    ctx.strokeStyle = "rgba(255,255,255,0.15)";
    ctx.beginPath();
    ctx.moveTo(PAD, yOfDeg(0));
    ctx.lineTo(PAD + w, yOfDeg(0));
    ctx.stroke();
  }
  for (const key of ["roll", "pitch", "yaw"]) drawLine(ctx, curves[key], PAD, w, yOfDeg, COLORS[key]);

  // mouth
  const mouth = curves.mouth || [];
  const mMax = Math.max(1e-6, ...mouth);
  drawLine(ctx, mouth, PAD, w, (v) => mouthTop + mouthH - (v / mMax) * mouthH, COLORS.mouth);

  // legend and axis
  ctx.font = "11px sans-serif";
  let x = PAD + 4;
  for (const key of ["yaw", "pitch", "roll", "mouth"]) {
    ctx.fillStyle = COLORS[key];
    ctx.fillText(key, x, top + 11);
    x += ctx.measureText(key).width + 10;
  }
  ctx.fillStyle = "rgba(255,255,255,0.6)";
  ctx.fillText(`${hi.toFixed(0)}° … ${lo.toFixed(0)}°`, x + 4, top + 11);
  const secs = frames / fps;
  ctx.fillText("0 s", PAD + 2, top + CHART_H - 4);
  const end = `${secs.toFixed(1)} s · ${frames} frames`;
  ctx.fillText(end, PAD + w - ctx.measureText(end).width - 2, top + CHART_H - 4);
  if (curves.saved && curves.saved.filename) {
    const s = `saved ${curves.saved.subfolder ? curves.saved.subfolder + "/" : ""}${curves.saved.filename}`;
    ctx.fillText(s, PAD + 40, top + CHART_H - 4);
  }
  ctx.restore();
}

app.registerExtension({
  name: "Ditto.MotionCurves",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_TYPES.has(nodeData.name)) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const r = onExecuted?.apply(this, arguments);
      const curves = message?.ditto_motion?.[0];
      if (curves) {
        this.dittoCurves = curves;
        const base = this.computeSize ? this.computeSize() : this.size;
        const needH = base[1] + CHART_H + PAD;
        if (this.size[1] < needH || this.size[0] < 320) {
          this.setSize([Math.max(this.size[0], 320), Math.max(this.size[1], needH)]);
        }
        this.setDirtyCanvas?.(true, true);
      }
      return r;
    };

    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      const r = onDrawForeground?.apply(this, arguments);
      if (this.dittoCurves && !this.flags?.collapsed) {
        try {
          drawCurves(ctx, this, this.dittoCurves);
        } catch (e) {
          console.warn("Ditto: cannot draw the motion curves", e);
        }
      }
      return r;
    };
  },
});
