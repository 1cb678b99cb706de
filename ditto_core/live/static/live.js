// Ditto Live page: avatars, settings, a WebSocket session (docs/live-protocol.md) fed by the microphone or an audio
// file, frames drawn on a canvas (and, with return_audio, the frame's audio played in sync with it). Plain JavaScript,
// no build step; served at <base>/static/live.js where <base> is "" or "/ditto/live" (index.html computes it).
"use strict";
(() => {
  const CFG = window.DITTO_LIVE || {
    base: location.pathname.replace(/index\.html$/, "").replace(/\/+$/, "").replace(/\/static$/, ""),
    token: new URLSearchParams(location.search).get("token"),
  };
  const $ = (id) => document.getElementById(id);
  const PIECE_S = 0.02; // audio sent in pieces of about 20 ms
  const LEAD_S = 0.15; // returned audio (and its frames) is scheduled this far ahead when playback (re)starts
  const MAGIC = 0x44544631; // "DTF1"
  const decoder = new TextDecoder();

  // ---------------------------------------------------------------- small helpers
  const url = (path, params = {}) => {
    const q = new URLSearchParams(params);
    if (CFG.token) q.set("token", CFG.token);
    const s = q.toString();
    return CFG.base + path + (s ? "?" + s : "");
  };
  const wsUrl = () => (location.protocol === "https:" ? "wss://" : "ws://") + location.host + url("/ws");
  const secs = (v) => (v == null ? "-" : `${Number(v).toFixed(2)} s`);
  const showError = (msg) => {
    $("error").textContent = msg ? `Error: ${msg}` : "";
  };
  const showEvent = (type, text) => {
    $("event").textContent = text;
    $("event").dataset.last = type;
  };
  async function httpError(res, what) {
    let msg = `HTTP ${res.status}`;
    try {
      const j = await res.json();
      msg = `${j.error || res.status}: ${j.message || ""}`;
    } catch (e) {
      /* not JSON */
    }
    return new Error(`${what}: ${msg}`);
  }
  const guard = (fn) => (...a) =>
    Promise.resolve()
      .then(() => fn(...a))
      .catch((e) => showError(e.message || String(e)));

  // ---------------------------------------------------------------- avatars
  async function loadAvatars(select) {
    const res = await fetch(url("/avatars"));
    if (!res.ok) throw await httpError(res, "avatars");
    const { avatars } = await res.json();
    const sel = $("avatar");
    const keep = select || sel.value;
    sel.replaceChildren(
      ...avatars.map((a) => new Option(`${a.name || a.id} (${a.kind}, ${a.width}x${a.height})`, a.id)),
    );
    if (!avatars.length) sel.append(new Option("(none yet: upload a portrait)", ""));
    if (keep && avatars.some((a) => a.id === keep)) sel.value = keep;
  }

  async function upload(file) {
    showEvent("upload", `uploading ${file.name}…`);
    const res = await fetch(url("/avatars", { name: file.name }), { method: "POST", body: file });
    if (!res.ok) {
      showEvent("upload", "upload failed");
      throw await httpError(res, `upload of ${file.name}`);
    }
    const a = await res.json();
    await loadAvatars(a.id);
    showEvent("upload", `avatar ${a.id} ${a.cached ? "(already registered)" : "registered"}`);
  }

  // ---------------------------------------------------------------- audio
  let actx = null; // one AudioContext for the page, made on the first click (autoplay rules)
  let workletReady = null;
  function audioContext() {
    if (!actx) actx = new (window.AudioContext || window.webkitAudioContext)();
    if (actx.state === "suspended") actx.resume();
    return actx;
  }
  const CAPTURE = `class DittoCapture extends AudioWorkletProcessor {
    constructor(o) { super(); this.n = o.processorOptions.n; this.buf = new Float32Array(this.n); this.k = 0; }
    process(inputs) {
      const x = inputs[0] && inputs[0][0];
      for (let i = 0; x && i < x.length;) {
        const m = Math.min(x.length - i, this.n - this.k);
        this.buf.set(x.subarray(i, i + m), this.k); this.k += m; i += m;
        if (this.k === this.n) { this.port.postMessage(this.buf, [this.buf.buffer]); this.buf = new Float32Array(this.n); this.k = 0; }
      }
      return true;
    }
  }
  registerProcessor("ditto-capture", DittoCapture);`;

  async function captureNode(c, onPiece) {
    const n = Math.round(c.sampleRate * PIECE_S);
    const mono = { channelCount: 1, channelCountMode: "explicit", channelInterpretation: "speakers" };
    if (c.audioWorklet && window.AudioWorkletNode) {
      try {
        if (!workletReady) {
          const blobUrl = URL.createObjectURL(new Blob([CAPTURE], { type: "application/javascript" }));
          workletReady = c.audioWorklet.addModule(blobUrl).finally(() => URL.revokeObjectURL(blobUrl));
        }
        await workletReady;
        const node = new AudioWorkletNode(c, "ditto-capture", { ...mono, processorOptions: { n } });
        node.port.onmessage = (e) => onPiece(e.data);
        return node;
      } catch (e) {
        workletReady = null;
        console.warn("ditto live: no AudioWorklet, using a ScriptProcessor", e);
      }
    }
    const node = c.createScriptProcessor(1024, 1, 1); // ~21 ms at 48 kHz
    node.onaudioprocess = (e) => onPiece(new Float32Array(e.inputBuffer.getChannelData(0)));
    return node;
  }

  function mixdown(buf) {
    const out = new Float32Array(buf.length);
    for (let ch = 0; ch < buf.numberOfChannels; ch++) {
      const x = buf.getChannelData(ch);
      for (let i = 0; i < x.length; i++) out[i] += x[i] / buf.numberOfChannels;
    }
    return out;
  }

  // ---------------------------------------------------------------- the session
  let S = null; // the open session (one at a time)
  let queue = []; // decoded frames waiting for their time: {index, at (AudioContext time, 0 = now), bmp}
  let lastDrawn = -1;
  let rafPending = false;
  let shown = 0;

  function setState(state) {
    $("state").textContent = state;
    $("state").dataset.state = state;
    const open = !!S;
    $("interrupt").disabled = !open || !S.ready;
    $("stop").disabled = !open;
    const talking = !!(S && S.mic);
    $("talk").setAttribute("aria-pressed", String(talking));
    $("talk").classList.toggle("active", talking);
  }

  function settings() {
    const s = {
      output: $("output").value,
      idle: $("idle").checked,
      mouth: Number($("mouth").value),
      head: Number($("head").value),
      return_audio: true,
    };
    if ($("emotion").value) s.emotion = $("emotion").value;
    return s;
  }

  function startSession() {
    const avatar = $("avatar").value;
    if (!avatar) return Promise.reject(new Error("no avatar: pick or upload one first"));
    const c = audioContext();
    showError("");
    for (const f of queue) f.bmp.close();
    queue = [];
    lastDrawn = -1;
    for (const [id, v] of [["frames", "0"], ["fps", "-"], ["latency", "-"], ["lag", "-"], ["dropped", "0"]]) {
      $(id).textContent = v;
    }
    const ws = new WebSocket(wsUrl());
    ws.binaryType = "arraybuffer";
    const s = {
      ws, ready: false, stopping: false, ended: false, rate: c.sampleRate, sent: 0, segs: [], mic: null, file: null,
      playTime: 0, sources: new Set(), arrivals: [], frames: 0, buffered: 0, errors: 0, full: false, droppedHere: 0,
    };
    S = s;
    setState("connecting");
    return new Promise((resolve, reject) => {
      s.onReady = resolve;
      s.onFail = reject;
      ws.onopen = () => {
        const audio = { encoding: "f32le", sample_rate: s.rate, channels: 1 };
        ws.send(JSON.stringify({ type: "start", avatar, settings: settings(), audio }));
        setState("starting");
      };
      ws.onmessage = (e) => (typeof e.data === "string" ? onEvent(s, JSON.parse(e.data)) : onFrame(s, e.data));
      ws.onclose = (e) => onClose(s, e);
    });
  }

  function sendJSON(s, msg) {
    if (s.ws.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify(msg));
  }

  function sendAudio(s, x, kind) {
    if (!s.ready || s.stopping || s.ws.readyState !== WebSocket.OPEN || !x.length) return;
    if (s.full && kind === "mic") {
      // the server said its speech buffer is full (it runs slower than real time): drop here, not there
      s.droppedHere += x.length / s.rate;
      return;
    }
    s.ws.send(x);
    // where this audio lies in the session's 16 kHz speech samples (the server resamples as one stream)
    const a = (s.sent * 16000) / s.rate;
    s.sent += x.length;
    const b = (s.sent * 16000) / s.rate;
    const last = s.segs[s.segs.length - 1];
    if (last && last.kind === kind) last.end = b;
    else s.segs.push({ start: a, end: b, kind });
    if (s.segs.length > 64) s.segs.shift();
  }

  function onEvent(s, ev) {
    switch (ev.type) {
      case "ready":
        s.ready = true;
        setState("live");
        showEvent("ready", `session ${ev.session} ready`);
        s.onReady(s);
        break;
      case "error":
        if (ev.code === "buffer_full") {
          if (!s.full) showError("the server is behind real time: microphone audio is dropped on this page until it catches up");
          s.full = true;
          break;
        }
        showError(`${ev.code}: ${ev.message}`);
        showEvent("error", ev.code);
        s.errors += 1;
        if (!s.ready) {
          s.onFail(new Error(`${ev.code}: ${ev.message}`));
          s.failed = true;
          s.ws.close();
        }
        break;
      case "stats":
        $("latency").textContent = secs(ev.first_frame_latency);
        $("lag").textContent = secs(ev.lag);
        $("dropped").textContent = String(ev.frames_dropped);
        s.buffered = ev.buffered_seconds || 0;
        if (s.full && s.buffered < 1) {
          s.full = false;
          showEvent("resumed", `sending audio again (${s.droppedHere.toFixed(1)} s dropped on this page)`);
        }
        break;
      case "interrupted":
        showEvent("interrupted", `interrupted: ${ev.dropped_audio_seconds.toFixed(2)} s of speech and ` +
          `${ev.dropped_frames} frames dropped`);
        break;
      case "ended":
        s.ended = true;
        $("dropped").textContent = String(ev.frames_dropped);
        showEvent("ended", `ended after ${ev.frames} frames`);
        s.ws.close();
        break;
      default:
        break;
    }
  }

  function onClose(s, e) {
    stopMic(s);
    stopFile(s);
    clearTimeout(s.stopTimer);
    if (!s.ready && !s.failed) {
      s.onFail(new Error(`could not connect (WebSocket closed, code ${e.code}): is the server up and the token right?`));
    } else if (s.ready && !s.ended && !s.stopping && !s.errors) { // (an error event stays shown)
      showError(`connection lost (code ${e.code}${e.reason ? ": " + e.reason : ""})`);
    }
    if (S === s) S = null;
    setState("closed");
  }

  // ---------------------------------------------------------------- frames
  function hear(s, h) {
    // returned audio is played, and the frame shown with it, unless it is the user's own microphone speech
    if (!actx || actx.state !== "running" || s.mic) return false;
    if (h.speech) {
      const mid = (h.speech[0] + h.speech[1]) / 2;
      const seg = s.segs.find((g) => g.start <= mid && mid < g.end + 160);
      if (seg && seg.kind === "mic") return false;
    }
    return true;
  }

  function onFrame(s, buf) {
    const dv = new DataView(buf);
    if (buf.byteLength < 8 || dv.getUint32(0, false) !== MAGIC) return;
    const n = dv.getUint32(4, true);
    const h = JSON.parse(decoder.decode(new Uint8Array(buf, 8, n)));
    const j = 8 + n;
    const now = performance.now();
    s.frames += 1;
    s.arrivals.push(now);
    while (s.arrivals.length > 2 && now - s.arrivals[0] > 2000) s.arrivals.shift();
    $("frames").textContent = String(s.frames);
    updateFps();
    if ($("lag").textContent === "-") $("lag").textContent = secs(h.lag);
    let at = 0;
    if (h.audio_bytes && hear(s, h)) {
      const pcm = new Int16Array(buf.slice(j + h.jpeg_bytes, j + h.jpeg_bytes + h.audio_bytes));
      if (s.playTime < actx.currentTime + 0.02) s.playTime = actx.currentTime + LEAD_S;
      const ab = actx.createBuffer(1, pcm.length, 16000);
      const ch = ab.getChannelData(0);
      for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
      const src = actx.createBufferSource();
      src.buffer = ab;
      src.connect(actx.destination);
      src.onended = () => s.sources.delete(src);
      s.sources.add(src);
      src.start(s.playTime);
      at = s.playTime;
      s.playTime += pcm.length / 16000;
      $("canvas").dataset.audioFrames = String(Number($("canvas").dataset.audioFrames || 0) + 1);
    } else {
      s.playTime = 0;
    }
    createImageBitmap(new Blob([new Uint8Array(buf, j, h.jpeg_bytes)], { type: "image/jpeg" }))
      .then((bmp) => enqueue({ index: h.index, at, bmp }))
      .catch((e) => showError(`frame ${h.index} could not be decoded: ${e.message}`));
  }

  function enqueue(f) {
    if (f.index <= lastDrawn) return f.bmp.close();
    if (!f.at) {
      // shown now: anything older still waiting is dropped
      for (const q of queue) if (q.index < f.index) q.bmp.close();
      queue = queue.filter((q) => q.index > f.index);
    }
    queue.push(f);
    queue.sort((a, b) => a.index - b.index);
    kick();
  }

  function kick() {
    if (!rafPending) {
      rafPending = true;
      requestAnimationFrame(draw);
    }
  }

  function draw() {
    rafPending = false;
    // the audio heard now was scheduled outputLatency ago
    const heard = actx ? actx.currentTime - (actx.outputLatency || actx.baseLatency || 0) : 0;
    let pick = null;
    while (queue.length && queue[0].at <= heard) {
      if (pick) pick.bmp.close();
      pick = queue.shift();
    }
    if (pick) {
      const cv = $("canvas");
      if (cv.width !== pick.bmp.width || cv.height !== pick.bmp.height) {
        cv.width = pick.bmp.width;
        cv.height = pick.bmp.height;
      }
      cv.getContext("2d").drawImage(pick.bmp, 0, 0);
      pick.bmp.close();
      if (pick.at) cv.dataset.syncMs = String(Math.round((heard - pick.at) * 1000)); // drawn this late after its audio
      lastDrawn = pick.index;
      cv.dataset.drawn = String(++shown);
    }
    if (queue.length) kick();
  }

  function updateFps() {
    const a = S ? S.arrivals : [];
    const now = performance.now();
    if (a.length < 2 || now - a[a.length - 1] > 2000) $("fps").textContent = a.length ? "0.0" : "-";
    else $("fps").textContent = (((a.length - 1) * 1000) / (a[a.length - 1] - a[0])).toFixed(1);
  }

  function flushPlayback(s) {
    for (const src of s.sources) {
      try {
        src.stop();
      } catch (e) {
        /* not started */
      }
    }
    s.sources.clear();
    s.playTime = 0;
    for (const f of queue) f.bmp.close();
    queue = [];
  }

  // ---------------------------------------------------------------- microphone and file
  async function startMic() {
    const c = audioContext();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("no microphone access here: browsers allow it only on https:// or http://localhost pages");
    }
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    let s;
    try {
      s = S || (await startSession());
    } catch (e) {
      stream.getTracks().forEach((t) => t.stop());
      throw e;
    }
    stopFile(s);
    const src = c.createMediaStreamSource(stream);
    const node = await captureNode(c, (x) => S === s && s.mic && sendAudio(s, x, "mic"));
    const sink = c.createGain();
    sink.gain.value = 0; // pulls the capture node without playing the microphone back
    src.connect(node);
    node.connect(sink);
    sink.connect(c.destination);
    s.mic = { stream, src, node, sink };
    if (S === s) setState($("state").dataset.state);
    else stopMic(s); // the session closed meanwhile
  }

  function stopMic(s) {
    if (!s || !s.mic) return;
    const m = s.mic;
    s.mic = null;
    m.stream.getTracks().forEach((t) => t.stop());
    for (const x of [m.src, m.node, m.sink]) x.disconnect();
    if (m.node.port) m.node.port.onmessage = null;
    if (S === s) setState($("state").dataset.state);
  }

  async function playFile(file) {
    const c = audioContext();
    let audio;
    try {
      audio = await c.decodeAudioData(await file.arrayBuffer());
    } catch (e) {
      throw new Error(`${file.name}: not an audio file this browser can decode`);
    }
    const s = S || (await startSession());
    stopMic(s);
    stopFile(s);
    const f = { data: mixdown(audio), pos: 0, owed: LEAD_S * s.rate, last: performance.now() };
    f.timer = setInterval(() => feedFile(s, f), 20);
    s.file = f;
    showEvent("file", `playing ${file.name} (${audio.duration.toFixed(1)} s)`);
  }

  function feedFile(s, f) {
    const now = performance.now();
    const piece = Math.round(s.rate * PIECE_S);
    f.owed += ((now - f.last) / 1000) * s.rate;
    f.last = now;
    if (s.buffered > 8) f.owed = Math.min(f.owed, piece); // the server is far behind (a slow machine): wait for it
    while (f.owed >= piece && f.pos < f.data.length) {
      const x = f.data.subarray(f.pos, f.pos + piece);
      sendAudio(s, x, "file");
      f.pos += x.length;
      f.owed -= x.length;
    }
    if (f.pos >= f.data.length) {
      stopFile(s);
      showEvent("file", "file sent");
    }
  }

  function stopFile(s) {
    if (s && s.file) {
      clearInterval(s.file.timer);
      s.file = null;
    }
  }

  // ---------------------------------------------------------------- buttons
  let busy = false; // a session or the microphone is being started: further clicks wait for it
  const once = (fn) => async (...a) => {
    if (busy) return;
    busy = true;
    try {
      await fn(...a);
    } finally {
      busy = false;
    }
  };

  async function talk() {
    if (S && S.mic) return stopMic(S);
    await startMic();
  }

  function interrupt() {
    const s = S;
    if (!s || !s.ready) return;
    stopFile(s);
    flushPlayback(s);
    sendJSON(s, { type: "interrupt" });
  }

  function stop() {
    const s = S;
    if (!s) return;
    if (s.stopping || !s.ready || s.ws.readyState !== WebSocket.OPEN) {
      s.stopping = true;
      s.ws.close(); // a second press closes now
      return;
    }
    s.stopping = true;
    stopMic(s);
    stopFile(s);
    flushPlayback(s);
    // hang up: the speech not rendered yet is dropped, the frames already in the pipeline finish, then the server
    // sends "ended" and closes (a slow server gets a minute; pressing Stop again closes at once)
    sendJSON(s, { type: "interrupt" });
    sendJSON(s, { type: "end" });
    setState("ending");
    s.stopTimer = setTimeout(() => s.ws.close(), 60000);
  }

  function init() {
    for (const id of ["mouth", "head"]) {
      const show = () => ($(`${id}-v`).textContent = Number($(id).value).toFixed(2));
      $(id).addEventListener("input", show);
      show();
    }
    $("refresh").addEventListener("click", guard(() => loadAvatars()));
    $("upload-btn").addEventListener("click", () => $("upload").click());
    $("upload").addEventListener("change", guard(async (e) => {
      const file = e.target.files[0];
      e.target.value = "";
      if (file) await upload(file);
    }));
    $("play-btn").addEventListener("click", () => $("playfile").click());
    $("playfile").addEventListener("change", guard(async (e) => {
      const file = e.target.files[0];
      e.target.value = "";
      if (file) await once(playFile)(file);
    }));
    $("talk").addEventListener("click", guard(once(talk)));
    $("interrupt").addEventListener("click", guard(interrupt));
    $("stop").addEventListener("click", guard(stop));
    window.addEventListener("pagehide", () => S && S.ws.close());
    setInterval(updateFps, 1000);
    setState("idle");
    // Go Live's link names its avatar: /ditto/live/?avatar=<name>
    guard(loadAvatars)(new URLSearchParams(location.search).get("avatar"));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
