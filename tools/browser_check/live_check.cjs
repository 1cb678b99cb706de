// Real-browser check of the Ditto Live page (ditto_core/live/static/). Started by live_run.sh, which starts the
// server (a stand-in renderer, a token) and passes everything in environment variables:
//   DITTO_LC_URL (http://127.0.0.1:PORT), DITTO_LC_TOKEN, DITTO_LC_AVATAR (the id of the avatar registered at start),
//   DITTO_LC_WAV (the speech the fake microphone plays, also played as a file), DITTO_LC_PORTRAIT (uploaded again),
//   DITTO_LC_PORTRAIT2 (another portrait, uploaded as a new avatar),
//   DITTO_LC_OUT (screenshots, results.json), DITTO_LC_CHROMIUM, DITTO_LC_NODE_MODULES (playwright-core),
//   DITTO_LC_TIMEOUT (seconds to wait for frames, default 120), DITTO_LC_PREFIX (1: also run the page under
//   /ditto/live/, the ComfyUI mount, through a proxy route; default 1).
// Prints one PASS or FAIL line per check; exit status 1 when any failed.
//
// Page mode, for a page already served elsewhere (run.sh's live phase: the page ComfyUI serves for the pack):
//   DITTO_LC_PAGE (the page's full address, e.g. http://127.0.0.1:8188/ditto/live/?avatar=comfyui) replaces
//   DITTO_LC_URL and skips the token, upload and play-file checks; DITTO_LC_AVATAR is the avatar the address names,
//   DITTO_LC_OTHER_AVATAR (optional) another one the server lists, DITTO_LC_MIN_FRAMES (default 2) the frames to see
//   drawn after Talk; DITTO_LC_PORTRAIT (optional) a portrait to upload. It checks the page and its files, the avatar
//   listed and selected, Talk with idle on, the frames drawn, Stop, no console errors, and the upload.
"use strict";

const fs = require("fs");
const path = require("path");

const env = (name, def) => {
  const v = process.env[name];
  if (v === undefined || v === "") {
    if (def === undefined) throw new Error(`live_check.cjs: ${name} is not set (run it through live_run.sh)`);
    return def;
  }
  return v;
};
const { chromium } = require(path.join(env("DITTO_LC_NODE_MODULES"), "playwright-core"));
const PAGE = env("DITTO_LC_PAGE", ""); // page mode (see above)
const BASE = PAGE ? new URL(PAGE).origin : env("DITTO_LC_URL").replace(/\/+$/, "");
const TOKEN = PAGE ? "" : env("DITTO_LC_TOKEN");
const AVATAR = env("DITTO_LC_AVATAR");
const WAV = env("DITTO_LC_WAV");
const PORTRAIT = env("DITTO_LC_PORTRAIT", PAGE ? "" : undefined); // page mode: optional (an upload check)
const PORTRAIT2 = PAGE ? "" : env("DITTO_LC_PORTRAIT2");
const OUT = env("DITTO_LC_OUT", "/tmp/ditto-live-check");
const CHROMIUM = env("DITTO_LC_CHROMIUM", "/usr/bin/chromium");
const WAIT_MS = Number(env("DITTO_LC_TIMEOUT", "120")) * 1000;
const PREFIX = env("DITTO_LC_PREFIX", "1") === "1";

const results = [];
const log = (...a) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...a);
function record(ok, name, detail = "") {
  results.push({ ok, name, detail });
  console.log(`${ok ? "PASS" : "FAIL"} ${name}${detail ? ": " + detail : ""}`);
  return ok;
}
async function check(name, fn) {
  try {
    const detail = await fn();
    return record(true, name, detail || "");
  } catch (e) {
    return record(false, name, (e && e.message ? e.message : String(e)).split("\n")[0]);
  }
}
const assert = (cond, msg) => {
  if (!cond) throw new Error(msg);
};
const text = (page, sel) => page.locator(sel).textContent();
async function waitFor(page, fn, arg, what, ms = WAIT_MS) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 200 });
  } catch (e) {
    const info = await page.evaluate(() => ({
      state: document.getElementById("state").textContent,
      frames: document.getElementById("frames").textContent,
      event: document.getElementById("event").textContent,
      error: document.getElementById("error").textContent,
    }));
    throw new Error(`${what} not within ${ms / 1000} s (page: ${JSON.stringify(info)})`);
  }
}

// every WebSocket of a page: bytes of audio sent, JSON events and frame headers received
function watchSockets(page) {
  const w = { sockets: [], events: [], headers: [], sentAudioBytes: 0, sentJSON: [], closed: 0 };
  page.on("websocket", (ws) => {
    w.sockets.push(ws.url());
    ws.on("framesent", (f) => {
      if (typeof f.payload === "string") w.sentJSON.push(JSON.parse(f.payload));
      else w.sentAudioBytes += f.payload.length;
    });
    ws.on("framereceived", (f) => {
      if (typeof f.payload === "string") w.events.push(JSON.parse(f.payload));
      else if (f.payload.slice(0, 4).toString() === "DTF1") {
        const n = f.payload.readUInt32LE(4);
        w.headers.push(JSON.parse(f.payload.slice(8, 8 + n).toString()));
      }
    });
    ws.on("close", () => (w.closed += 1));
  });
  w.has = (type) => w.events.some((e) => e.type === type);
  w.reset = () => {
    w.events.length = 0;
    w.headers.length = 0;
    w.sentJSON.length = 0;
    w.sentAudioBytes = 0;
  };
  return w;
}

function watchConsole(page, list) {
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") list.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => list.push(`pageerror: ${e.message}`));
}

// the canvas holds a drawn picture: not blank, not one flat colour (the stand-in renderer draws a grey gradient)
const canvasInfo = (page) =>
  page.evaluate(() => {
    const c = document.getElementById("canvas");
    const copy = document.createElement("canvas"); // read back from a copy (the page's own canvas stays GPU-backed)
    copy.width = c.width;
    copy.height = c.height;
    const g = copy.getContext("2d", { willReadFrequently: true });
    g.drawImage(c, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4 * 7) {
      if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
      colours.add((d[i] >> 3) * 1024 + (d[i + 1] >> 3) * 32 + (d[i + 2] >> 3));
    }
    return { width: c.width, height: c.height, lit: lit / (d.length / 28), colours: colours.size,
      drawn: Number(c.dataset.drawn || 0), audioFrames: Number(c.dataset.audioFrames || 0),
      syncMs: c.dataset.syncMs === undefined ? null : Number(c.dataset.syncMs) };
  });
const frames = (page) => page.evaluate(() => Number(document.getElementById("frames").textContent));

// ---------------------------------------------------------------- page mode: a page already served (ComfyUI's mount)
// the server's events in short: counts by type, and each error code with its count and first message
function eventSummary(events) {
  const types = {};
  const errors = {};
  for (const e of events) {
    types[e.type] = (types[e.type] || 0) + 1;
    if (e.type === "error") {
      const k = e.code || "?";
      errors[k] = errors[k] || { n: 0, message: e.message };
      errors[k].n += 1;
    }
  }
  const t = Object.entries(types).map(([k, n]) => `${k} x${n}`).join(", ");
  const er = Object.entries(errors).map(([k, v]) => `${k} x${v.n} ("${String(v.message).slice(0, 120)}")`).join("; ");
  return `events ${t || "none"}${er ? `; errors ${er}` : ""}`;
}

async function pageMode() {
  const OTHER = env("DITTO_LC_OTHER_AVATAR", "");
  const MIN_FRAMES = Number(env("DITTO_LC_MIN_FRAMES", "2"));
  const pageUrl = new URL(PAGE);
  const base = pageUrl.origin + pageUrl.pathname.replace(/index\.html$/, "").replace(/\/+$/, "");
  await check(`server: ${pageUrl.pathname} serves the page, its files and the avatars`, async () => {
    const r = await fetch(PAGE);
    assert(r.status === 200 && /<html/i.test(await r.text()), `${PAGE} answered ${r.status}`);
    for (const f of ["live.js", "live.css"]) {
      const s = await fetch(`${base}/static/${f}`);
      assert(s.status === 200, `${base}/static/${f} answered ${s.status}`);
    }
    const a = await fetch(`${base}/avatars`);
    assert(a.ok, `${base}/avatars answered ${a.status}`);
    const ids = (await a.json()).avatars.map((x) => x.id);
    assert(ids.includes(AVATAR), `avatar ${AVATAR} not listed (${ids})`);
    if (OTHER) assert(ids.includes(OTHER), `avatar ${OTHER} not listed (${ids})`);
    return `avatars ${ids.join(", ")}`;
  });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${WAV}`,
      "--autoplay-policy=no-user-gesture-required",
      "--no-sandbox",
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    await context.grantPermissions(["microphone"], { origin: BASE });
    const consoleMsgs = [];
    const page = await context.newPage();
    watchConsole(page, consoleMsgs);
    const ws = watchSockets(page);
    const listed = await check(`page loads at ${pageUrl.pathname}${pageUrl.search} with avatar ${AVATAR} listed`, async () => {
      const res = await page.goto(PAGE);
      assert(res.status() === 200, `status ${res.status()}`);
      await waitFor(page, (id) => [...document.querySelectorAll("#avatar option")].some((o) => o.value === id),
        AVATAR, `avatar ${AVATAR} in the list`, 30000);
      const options = await page.$$eval("#avatar option", (o) => o.map((x) => x.value));
      return `options ${options.join(", ")}; state ${await text(page, "#state")}`;
    });
    if (!listed) return;
    await check(`the avatar named in ?avatar= (${AVATAR}) is selected`, async () => {
      const sel = await page.inputValue("#avatar");
      const options = await page.$$eval("#avatar option", (o) => o.map((x) => x.value));
      if (sel !== AVATAR) {
        await page.selectOption("#avatar", AVATAR); // as a user would, so that the session checks below still run
        throw new Error(`selected ${sel} of ${options.join(", ")} (picked ${AVATAR} by hand to go on)`);
      }
      return `${options.length} avatars listed, the first ${options[0]}`;
    });
    await page.screenshot({ path: path.join(OUT, "live-page-loaded.png") });

    await page.check("#idle");
    const talkOk = await check(`Talk (idle on): a session starts through the page's server and ${MIN_FRAMES} frames are drawn`, async () => {
      const t0 = Date.now();
      await page.click("#talk");
      await waitFor(page, (n) => Number(document.getElementById("canvas").dataset.drawn || 0) >= n, MIN_FRAMES,
        `${MIN_FRAMES} frames drawn`);
      const start = ws.sentJSON.find((m) => m.type === "start");
      assert(start && start.avatar === AVATAR && start.settings.idle === true, `start message ${JSON.stringify(start)}`);
      const want = new URL(`${base}/ws`);
      want.protocol = "ws:";
      assert(ws.sockets.some((u) => u.split("?")[0] === want.toString()), `WebSockets ${ws.sockets.join(", ")}, expected ${want}`);
      assert(ws.sentAudioBytes > 0, "no microphone audio sent");
      const c = await canvasInfo(page);
      // (on a CPU the pipeline is many times slower than the microphone: "buffer_full" errors are expected there)
      return `${c.drawn} drawn (${await frames(page)} received) after ${((Date.now() - t0) / 1000).toFixed(0)} s; ` +
        `first frame ${await text(page, "#latency")}, lag ${await text(page, "#lag")}, state ${await text(page, "#state")}; ` +
        eventSummary(ws.events);
    });
    if (talkOk) {
      await check("Talk: the canvas shows the frames (not blank, not flat)", async () => {
        const c = await canvasInfo(page);
        assert(c.lit > 0.2 && c.colours >= 16, JSON.stringify(c));
        return JSON.stringify(c);
      });
    }
    await page.screenshot({ path: path.join(OUT, "live-talk.png") });
    await check("Stop: the session ends and the connection closes", async () => {
      const t0 = Date.now();
      const before = ws.events.length;
      await page.click("#stop");
      // errors for microphone pieces sent just before Stop (on a CPU, buffer_full) can still come until the server's
      // "interrupted": clear what the page shows once that arrived, and expect no error after it
      const t = Date.now();
      while (!ws.events.slice(before).some((e) => e.type === "interrupted") && Date.now() - t < 60000) {
        await new Promise((r) => setTimeout(r, 200));
      }
      await new Promise((r) => setTimeout(r, 1000)); // the page has handled the messages before it too
      await page.evaluate(() => (document.getElementById("error").textContent = ""));
      await waitFor(page, () => document.getElementById("state").dataset.state === "closed", null, "state closed");
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      const after = ws.events.slice(before);
      assert(ws.sentJSON.some((m) => m.type === "interrupt") && ws.sentJSON.some((m) => m.type === "end"),
        "no interrupt + end sent");
      assert(ws.closed >= 1, "the WebSocket did not close");
      assert(after.some((e) => e.type === "interrupted"), `no 'interrupted' after Stop: ${eventSummary(after)}`);
      // (errors for microphone pieces sent just before Stop can still arrive before the server's "interrupted")
      const late = after.slice(after.findIndex((e) => e.type === "interrupted"));
      assert(!late.some((e) => e.type === "error"), `errors after 'interrupted': ${eventSummary(late)}`);
      const err = (await text(page, "#error")).trim();
      assert(!err, `error shown: ${err}`);
      // the server sends "ended" once the frames already in the pipeline are out; the page waits a minute for it,
      // then closes itself: on a CPU (seconds a frame, about 30 frames in the online pipeline) that minute is short
      const how = ws.has("ended") ? "after the server's 'ended'" : "by the page after its minute of grace, before the server's 'ended' (the pipeline still rendering)";
      return `closed ${secs} s after Stop ${how}; ${await frames(page)} frames received in all; after Stop: ${eventSummary(after)}`;
    });
    await page.screenshot({ path: path.join(OUT, "live-stopped.png") });
    await check("no console errors or warnings on the page", async () => {
      assert(!consoleMsgs.length, consoleMsgs.join(" | "));
    });
    if (PORTRAIT) {
      // the page's Upload button, as its request: a portrait registered with the server's models
      await check("Upload: a portrait POSTed to <page>/avatars is registered", async () => {
        const r = await fetch(`${base}/avatars?name=${encodeURIComponent(path.basename(PORTRAIT))}`,
          { method: "POST", body: fs.readFileSync(PORTRAIT) });
        const body = await r.text();
        assert(r.ok, `HTTP ${r.status}: ${body.slice(0, 300)}`);
        return body.slice(0, 200);
      });
    }
    await page.close();
  } finally {
    await browser.close();
  }
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  if (PAGE) {
    await pageMode();
    fs.writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 2));
    const failed = results.filter((r) => !r.ok).length;
    log(`${results.length - failed} passed, ${failed} failed; screenshots in ${OUT}`);
    return failed ? 1 : 0;
  }
  const goodUrl = `${BASE}/?token=${encodeURIComponent(TOKEN)}`;

  // ---------------------------------------------------------------- server answers without a browser
  await check("server: the page, /avatars and /static refuse a missing or wrong token (401)", async () => {
    for (const u of [`${BASE}/`, `${BASE}/?token=wrong`, `${BASE}/avatars`, `${BASE}/static/live.js?token=x`]) {
      const r = await fetch(u);
      assert(r.status === 401, `${u} answered ${r.status}`);
    }
    const r = await fetch(`${BASE}/avatars`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert(r.ok, `/avatars with the token answered ${r.status}`);
    const ids = (await r.json()).avatars.map((a) => a.id);
    assert(ids.includes(AVATAR), `avatar ${AVATAR} not listed (${ids})`);
    return `avatars ${ids.join(", ")}`;
  });
  const pageHtml = await (await fetch(goodUrl)).text();

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${WAV}`,
      "--autoplay-policy=no-user-gesture-required",
      "--no-sandbox",
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    await context.grantPermissions(["microphone"], { origin: BASE });

    // ---------------------------------------------------------------- wrong token
    await check("wrong token: the server's 401 message is visible in the browser", async () => {
      const page = await context.newPage();
      const res = await page.goto(`${BASE}/?token=wrong`);
      assert(res.status() === 401, `status ${res.status()}`);
      const body = await page.locator("body").innerText();
      assert(/unauthorized|token/i.test(body), `body: ${body.slice(0, 200)}`);
      await page.close();
    });
    await check("wrong token: the page (its files served) shows the avatars request's 401 as an error", async () => {
      const page = await context.newPage();
      // the page and its files as the server sends them; every other request goes out with the wrong token
      await page.route(/\/(\?token=wrong)?$|\/static\/live\.(js|css)\?token=wrong$/, async (route) => {
        const u = new URL(route.request().url());
        if (u.pathname === "/") return route.fulfill({ body: pageHtml, contentType: "text/html" });
        u.searchParams.set("token", TOKEN);
        return route.fulfill({ response: await route.fetch({ url: u.toString() }) });
      });
      await page.goto(`${BASE}/?token=wrong`);
      await waitFor(page, () => /unauthorized/i.test(document.getElementById("error").textContent), null,
        "an 'unauthorized' error on the page", 15000);
      const err = (await text(page, "#error")).trim();
      await page.click("#talk");
      await waitFor(page, () => /avatar/i.test(document.getElementById("error").textContent), null,
        "an error for Talk without an avatar", 15000);
      await page.screenshot({ path: path.join(OUT, "wrong-token.png") });
      await page.close();
      return err;
    });

    // ---------------------------------------------------------------- the page
    const consoleMsgs = [];
    const page = await context.newPage();
    watchConsole(page, consoleMsgs);
    const ws = watchSockets(page);
    await check("page loads with its avatars", async () => {
      const res = await page.goto(goodUrl);
      assert(res.status() === 200, `status ${res.status()}`);
      await waitFor(page, (id) => [...document.querySelectorAll("#avatar option")].some((o) => o.value === id),
        AVATAR, `avatar ${AVATAR} in the list`, 15000);
      await page.selectOption("#avatar", AVATAR);
      return `state ${await text(page, "#state")}`;
    });
    await check("every control has a tooltip and an accessible name", async () => {
      const bad = await page.evaluate(() => {
        const out = [];
        for (const el of document.querySelectorAll("button, select, input")) {
          const name = el.getAttribute("aria-label") || (el.labels && el.labels.length ? el.labels[0].textContent : "")
            || (el.tagName === "BUTTON" ? el.textContent : "");
          if (!el.hidden && !el.title) out.push(`${el.id}: no title`);
          if (!name.trim()) out.push(`${el.id}: no accessible name`);
        }
        return out;
      });
      assert(!bad.length, bad.join("; "));
    });

    // ---------------------------------------------------------------- talk (the fake microphone plays the WAV)
    await page.selectOption("#output", "crop");
    await page.selectOption("#emotion", "Happy");
    await page.fill("#mouth", "1.2");
    const talkOk = await check("Talk: a session starts and frames arrive", async () => {
      const t0 = Date.now();
      await page.click("#talk");
      await waitFor(page, () => Number(document.getElementById("frames").textContent) > 3, null, "4 frames");
      const start = ws.sentJSON.find((m) => m.type === "start");
      assert(start && start.settings.output === "crop" && start.settings.emotion === "Happy" &&
        start.settings.mouth === 1.2, `start message ${JSON.stringify(start)}`);
      assert(start.audio.encoding === "f32le" && start.audio.channels === 1, `audio ${JSON.stringify(start.audio)}`);
      assert(await page.getAttribute("#talk", "aria-pressed") === "true", "Talk is not shown as pressed");
      return `${await frames(page)} frames after ${((Date.now() - t0) / 1000).toFixed(1)} s; ` +
        `state ${await text(page, "#state")}; audio ${start.audio.sample_rate} Hz`;
    });
    if (talkOk) {
      await check("Talk: the canvas shows the frames (not blank, not flat)", async () => {
        await waitFor(page, () => Number(document.getElementById("canvas").dataset.drawn || 0) > 0, null, "a drawn frame", 15000);
        const c = await canvasInfo(page);
        assert(c.lit > 0.2 && c.colours >= 16, JSON.stringify(c));
        return JSON.stringify(c);
      });
      await check("Talk: microphone audio is sent (~20 ms f32le pieces) and comes back as speech frames", async () => {
        const start = ws.sentJSON.find((m) => m.type === "start");
        const bytesPerS = 4 * start.audio.sample_rate;
        await waitFor(page, () => true, null, "", 1000);
        assert(ws.sentAudioBytes > 0.5 * bytesPerS, `only ${ws.sentAudioBytes} bytes of audio sent`);
        const t = Date.now();
        while (!ws.headers.some((h) => h.speech) && Date.now() - t < WAIT_MS) await new Promise((r) => setTimeout(r, 250));
        assert(ws.headers.some((h) => h.speech), "no frame with speech");
        return `${(ws.sentAudioBytes / bytesPerS).toFixed(1)} s of audio sent`;
      });
      await check("Talk: stats are shown (first-frame latency, lag, fps, dropped)", async () => {
        await waitFor(page, () => document.getElementById("latency").textContent !== "-" &&
          /^[0-9.]+$/.test(document.getElementById("fps").textContent), null, "stats", 15000);
        const s = await page.evaluate(() => Object.fromEntries(["latency", "lag", "fps", "dropped", "state", "frames"]
          .map((id) => [id, document.getElementById(id).textContent])));
        assert(/^\d+$/.test(s.dropped), `dropped ${s.dropped}`);
        assert(/s$/.test(s.lag), `lag ${s.lag}`);
        return JSON.stringify(s);
      });
      await page.screenshot({ path: path.join(OUT, "talk.png") });
      await check("Interrupt: the server answers 'interrupted'", async () => {
        await page.click("#interrupt");
        await waitFor(page, () => document.getElementById("event").dataset.last === "interrupted", null,
          "an 'interrupted' event", 30000);
        assert(ws.sentJSON.some((m) => m.type === "interrupt"), "no interrupt message sent");
        return (await text(page, "#event")).trim();
      });
      await check("Stop: the session ends ('ended') and the connection closes", async () => {
        const t0 = Date.now();
        await page.click("#stop");
        await waitFor(page, () => document.getElementById("state").dataset.state === "closed", null, "state closed");
        assert(ws.sentJSON.some((m) => m.type === "end"), "no end message sent");
        assert(ws.has("ended"), `no 'ended' event (events: ${ws.events.map((e) => e.type).join(",")})`);
        assert(ws.closed >= 1, "the WebSocket did not close");
        assert(await page.getAttribute("#talk", "aria-pressed") === "false", "Talk still shown as pressed");
        const err = (await text(page, "#error")).trim();
        assert(!err, `error shown: ${err}`);
        return `closed ${((Date.now() - t0) / 1000).toFixed(1)} s after Stop`;
      });
    }

    // ---------------------------------------------------------------- play a file (audio returned, played in sync)
    ws.reset();
    await check("Play file: the file is sent paced, frames come with their audio scheduled for playback", async () => {
      const t0 = Date.now();
      await page.setInputFiles("#playfile", WAV);
      await waitFor(page, () => Number(document.getElementById("canvas").dataset.audioFrames || 0) > 3 &&
        Number(document.getElementById("frames").textContent) > 3, null, "4 frames with returned audio");
      const start = ws.sentJSON.find((m) => m.type === "start");
      assert(start && start.settings.return_audio === true, `start ${JSON.stringify(start)}`);
      assert(ws.headers.every((h) => h.audio_bytes === 1280), "frames without their 1280 bytes of audio");
      const t = Date.now();
      while (!ws.headers.some((h) => h.speech) && Date.now() - t < WAIT_MS) await new Promise((r) => setTimeout(r, 250));
      assert(ws.headers.some((h) => h.speech), "no frame with the file's speech");
      const sent = ws.sentAudioBytes / (4 * start.audio.sample_rate);
      return `${(await canvasInfo(page)).audioFrames} frames with audio scheduled, ${sent.toFixed(1)} s of the file ` +
        `sent after ${((Date.now() - t0) / 1000).toFixed(1)} s`;
    });
    await check("Play file: frames are drawn at their audio's time (within 60 ms)", async () => {
      const before = (await canvasInfo(page)).drawn;
      await waitFor(page, (n) => Number(document.getElementById("canvas").dataset.drawn) > n + 2 &&
        document.getElementById("canvas").dataset.syncMs !== undefined, before, "3 more frames drawn", 60000);
      const c = await canvasInfo(page);
      assert(Math.abs(c.syncMs) <= 60, `the last frame was drawn ${c.syncMs} ms after its audio`);
      return `the last drawn ${c.syncMs} ms after its audio was heard; ${c.drawn} drawn in all`;
    });
    await page.screenshot({ path: path.join(OUT, "play-file.png") });
    await check("Play file: Stop ends the session cleanly", async () => {
      await page.click("#stop");
      await waitFor(page, () => document.getElementById("state").dataset.state === "closed", null, "state closed");
      assert(ws.has("ended"), "no 'ended' event");
      const err = (await text(page, "#error")).trim();
      assert(!err, `error shown: ${err}`);
    });

    // ---------------------------------------------------------------- uploads
    await check("Upload: a new portrait is registered, listed and selected", async () => {
      // the example portrait mirrored: other bytes, so a new avatar
      await page.setInputFiles("#upload", PORTRAIT2);
      await waitFor(page, () => / registered$/.test(document.getElementById("event").textContent), null,
        "the new avatar", 180000);
      const sel = await page.inputValue("#avatar");
      const options = await page.$$eval("#avatar option", (o) => o.map((x) => x.value));
      assert(sel && sel !== AVATAR && options.includes(AVATAR), `selected ${sel} of ${options}`);
      return `${(await text(page, "#event")).trim()}; ${options.length} avatars listed`;
    });
    await check("Upload: the same portrait again is found registered and selected", async () => {
      await page.setInputFiles("#upload", PORTRAIT);
      await waitFor(page, () => /already registered/.test(document.getElementById("event").textContent), null,
        "the avatar", 180000);
      const sel = await page.inputValue("#avatar");
      assert(sel === AVATAR, `selected ${sel}, expected ${AVATAR} (the same bytes)`);
      return (await text(page, "#event")).trim();
    });
    await check("Upload: a file that is not an image or video gives a visible error", async () => {
      await page.setInputFiles("#upload", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hello") });
      await waitFor(page, () => /notes\.txt/.test(document.getElementById("error").textContent), null, "an error", 30000);
      const err = (await text(page, "#error")).trim();
      await page.evaluate(() => (document.getElementById("error").textContent = ""));
      return err;
    });
    await page.screenshot({ path: path.join(OUT, "live-page.png"), fullPage: true });
    const expected = (m) => /notes\.txt|status of 400/.test(m); // the browser logs the refused upload's 400
    await check("no console errors or warnings on the page", async () => {
      const bad = consoleMsgs.filter((m) => !expected(m));
      assert(!bad.length, bad.join(" | "));
      return `${consoleMsgs.length} expected (the refused upload's 400)`;
    });
    await page.close();

    // ---------------------------------------------------------------- under /ditto/live/ (the ComfyUI mount)
    if (PREFIX) {
      await check("under /ditto/live/: page, files, avatars and a session work through the prefix", async () => {
        const p = await context.newPage();
        const msgs = [];
        watchConsole(p, msgs);
        const w = watchSockets(p);
        const seen = [];
        const strip = (u) => {
          const x = new URL(u);
          x.pathname = x.pathname.replace(/^\/ditto\/live/, "") || "/";
          return x.toString();
        };
        await p.route(/\/ditto\/live(\/|$|\?)/, async (route) => {
          seen.push(new URL(route.request().url()).pathname);
          return route.fulfill({ response: await route.fetch({ url: strip(route.request().url()) }) });
        });
        // the page's WebSocket to <prefix>/ws is carried by Node to the server's /ws (connectToServer cannot change
        // the address); node runs with --experimental-websocket where WebSocket is not yet global (Node < 22)
        assert(typeof WebSocket === "function", "this Node has no WebSocket (Node >= 22, or --experimental-websocket)");
        await p.routeWebSocket(/\/ditto\/live\/ws/, (r) => {
          seen.push(new URL(r.url()).pathname);
          const up = new WebSocket(strip(r.url()));
          up.binaryType = "arraybuffer";
          const pending = [];
          up.onopen = () => pending.splice(0).forEach((m) => up.send(m));
          up.onmessage = (e) => r.send(typeof e.data === "string" ? e.data : Buffer.from(e.data));
          up.onclose = (e) => r.close({ code: e.code === 1005 || e.code === 1006 ? 1000 : e.code, reason: e.reason });
          up.onerror = () => r.close({ code: 1011, reason: "upstream error" });
          r.onMessage((m) => (up.readyState === 1 ? up.send(m) : pending.push(m)));
          r.onClose(() => up.close());
        });
        await p.goto(`${BASE}/ditto/live/?token=${encodeURIComponent(TOKEN)}`);
        await waitFor(p, (id) => [...document.querySelectorAll("#avatar option")].some((o) => o.value === id), AVATAR,
          "the avatar list", 15000);
        await p.click("#talk");
        await waitFor(p, () => Number(document.getElementById("frames").textContent) > 1, null, "2 frames");
        await p.click("#stop");
        await waitFor(p, () => document.getElementById("state").dataset.state === "closed", null, "state closed");
        for (const need of ["/ditto/live/static/live.js", "/ditto/live/static/live.css", "/ditto/live/avatars", "/ditto/live/ws"]) {
          assert(seen.includes(need), `${need} was not requested (seen: ${seen.join(", ")})`);
        }
        assert(!msgs.length, msgs.join(" | "));
        await p.close();
        return `requests: ${[...new Set(seen)].join(", ")}`;
      });
    }
  } finally {
    await browser.close();
  }
  fs.writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 2));
  const failed = results.filter((r) => !r.ok).length;
  log(`${results.length - failed} passed, ${failed} failed; screenshots in ${OUT}`);
  return failed ? 1 : 0;
}

main().then(
  (rc) => process.exit(rc),
  (e) => {
    console.log(`FAIL live_check.cjs: ${e.stack || e}`);
    process.exit(1);
  },
);
