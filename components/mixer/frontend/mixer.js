// StemDeck multitrack mixer: the browser half of components/mixer (st.components.v2).
//
// Plain ES module, no build step. Why it is built this way:
// - One shared AudioContext per page: every lane of every mixer runs on one clock, so lanes
//   can only drift if they were *scheduled* differently. All sources of a mixer are started
//   with the same `when` and `offset` (AudioBufferSourceNode.start), which Web Audio renders
//   sample-accurately; a lane that finishes decoding during playback joins at the transport
//   position of its own future `when`.
// - The stems arrive as the job's compressed MP3 previews (URLs from Python) and are decoded
//   into AudioBuffers; waveforms come from the peaks JSON Python already stores, so the page
//   draws before any audio is fetched.
// - Streamlit re-invokes this module's default export whenever its data changes and calls the
//   returned cleanup first. A Mixer is therefore kept per host element and only disposed when
//   the host really left the page, so a rerun never stops playback.
// - Settings, transport and (optionally) a measured sync figure are reported to Python with
//   setStateValue, throttled: each report reruns the mixer's fragment on the server.

const MIN_DB = -60; // fader bottom = silence ("-inf")
const MAX_DB = 12;
const START_LEAD_S = 0.06; // schedule ahead so every lane gets the same future `when`
const SMOOTH_S = 0.012; // gain/pan ramps: no zipper clicks when dragging a fader
const AUTO_LOAD_BYTES = 1024 ** 3; // decoded-audio budget before asking the user
const DECODE_CONCURRENCY = 2; // bounds peak memory (compressed + decoded) while loading
const SETTINGS_REPORT_MS = 250;
const TRANSPORT_REPORT_MS = 60;
const MIN_PERIODIC_MS = 500; // at most 2 position reports per second while playing
const PROBE_WINDOW = 2048;
const PROBE_RADIUS = 1024;

const shared = { ctx: null, mixers: new Set() };
const instances = new WeakMap();

function audioContext() {
  if (!shared.ctx) {
    // The previews are 44.1 kHz: decoding at the same rate avoids a resample per lane.
    try {
      shared.ctx = new AudioContext({ sampleRate: 44100, latencyHint: "playback" });
    } catch (_err) {
      shared.ctx = new AudioContext({ latencyHint: "playback" });
    }
  }
  return shared.ctx;
}

// ---------------------------------------------------------------- small helpers
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

// Inline SVG icons (system fonts lack glyphs such as ⏮, and icons must not come from a CDN).
const ICONS = {
  play: "M7 4.5v15a1 1 0 0 0 1.5.86l12.5-7.5a1 1 0 0 0 0-1.72L8.5 3.64A1 1 0 0 0 7 4.5z",
  pause: "M6 4h4.5v16H6zM13.5 4H18v16h-4.5z",
  start: "M5 4h2.5v16H5zM20 4.8v14.4a.8.8 0 0 1-1.2.7L8.6 12.7a.8.8 0 0 1 0-1.4l10.2-7.2a.8.8 0 0 1 1.2.7z",
  loop: "M17 2l4 4-4 4V7H7a3 3 0 0 0-3 3v1H2v-1a5 5 0 0 1 5-5h10V2zM7 22l-4-4 4-4v3h10a3 3 0 0 0 3-3v-1h2v1a5 5 0 0 1-5 5H7v3z",
};

function icon(name, size = 16) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", size);
  svg.setAttribute("height", size);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}

const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
const dbToGain = (db) => (db <= MIN_DB ? 0 : Math.pow(10, db / 20));

function fmtTime(s, tenths = true) {
  const d = Math.floor(Math.max(0, s || 0) * 10 + 1e-6); // whole tenths, robust to 2.9999…
  const m = Math.floor(d / 600);
  const whole = Math.floor(d / 10) % 60;
  return `${m}:${String(whole).padStart(2, "0")}${tenths ? `.${d % 10}` : ""}`;
}

const fmtDb = (db) => (db <= MIN_DB ? "−∞ dB" : `${db > 0 ? "+" : db < 0 ? "−" : ""}${Math.abs(db).toFixed(1)} dB`);
const fmtPan = (p) => (Math.abs(p) < 0.005 ? "C" : `${p < 0 ? "L" : "R"}${Math.round(Math.abs(p) * 100)}`);
const panText = (p) => (Math.abs(p) < 0.005 ? "centre" : `${Math.round(Math.abs(p) * 100)}% ${p < 0 ? "left" : "right"}`);
const fmtBytes = (b) => (b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(1)} GB` : `${Math.round(b / 1024 ** 2)} MB`);

function decodePeaks(b64) {
  // Python sends interleaved int8 (max, min) pairs scaled by 127: ~2.4 kB per 1200 points.
  const raw = atob(b64 || "");
  const maxs = new Float32Array(raw.length >> 1);
  const mins = new Float32Array(raw.length >> 1);
  for (let i = 0; i < maxs.length; i++) {
    maxs[i] = ((raw.charCodeAt(2 * i) << 24) >> 24) / 127;
    mins[i] = ((raw.charCodeAt(2 * i + 1) << 24) >> 24) / 127;
  }
  return { maxs, mins };
}

// Run async jobs with at most `limit` in flight.
function limiter(limit) {
  let active = 0;
  const queue = [];
  const next = () => {
    if (active >= limit || !queue.length) return;
    active++;
    const { fn, resolve, reject } = queue.shift();
    fn().then(resolve, reject).finally(() => {
      active--;
      next();
    });
  };
  return (fn) => new Promise((resolve, reject) => {
    queue.push({ fn, resolve, reject });
    next();
  });
}
const decodeSlot = limiter(DECODE_CONCURRENCY);

// ---------------------------------------------------------------- one lane (stem)
class Lane {
  constructor(mixer, spec) {
    this.mixer = mixer;
    this.stem = spec.stem;
    this.label = spec.label;
    this.colour = spec.colour;
    this.url = spec.url;
    this.duration = spec.duration_s;
    this.peaks = decodePeaks(spec.peaks);
    this.gainDb = 0;
    this.mute = false;
    this.solo = false;
    this.pan = 0;
    this.status = "waiting"; // waiting | loading | decoding | ready | error
    this.progress = 0;
    this.error = null;
    this.buffer = null;
    this.source = null;
    this.when = 0;
    this.offset = 0;
    this.level = 0;
    this.meterHold = 0;
    this.nodes = null;
  }

  // Nodes: source → gain → panner → meter (post-fader) → mixer bus; source → probe (pre-fader).
  connect(ctx, bus) {
    const gain = ctx.createGain();
    const panner = ctx.createStereoPanner();
    const meter = ctx.createAnalyser();
    const probe = ctx.createAnalyser();
    meter.fftSize = 1024;
    probe.fftSize = PROBE_WINDOW;
    gain.connect(panner).connect(meter).connect(bus);
    gain.gain.value = 0;
    this.nodes = { gain, panner, meter, probe, meterBuf: new Float32Array(meter.fftSize), scratch: new Float32Array(PROBE_WINDOW) };
  }

  disconnect() {
    this.stop(0);
    if (this.nodes) for (const n of ["gain", "panner", "meter", "probe"]) this.nodes[n].disconnect();
    this.nodes = null;
    this.buffer = null;
  }

  settings() {
    return { gain_db: this.gainDb <= MIN_DB ? "-inf" : this.gainDb, mute: this.mute, solo: this.solo, pan: this.pan };
  }

  apply(s) {
    if (!s) return;
    if (s.gain_db === "-inf") this.gainDb = MIN_DB;
    else if (Number.isFinite(Number(s.gain_db))) this.gainDb = clamp(Number(s.gain_db), MIN_DB, MAX_DB);
    if (typeof s.mute === "boolean") this.mute = s.mute;
    if (typeof s.solo === "boolean") this.solo = s.solo;
    if (Number.isFinite(Number(s.pan))) this.pan = clamp(Number(s.pan), -1, 1);
  }

  // Same rule as services.mixdown.audible: any solo → only soloed lanes; mute always wins.
  audible(anySolo) {
    return !this.mute && (this.solo || !anySolo);
  }

  updateAudio(ctx, anySolo) {
    if (!this.nodes) return;
    const t = ctx.currentTime;
    const g = this.audible(anySolo) ? dbToGain(this.gainDb) : 0;
    this.nodes.gain.gain.setTargetAtTime(g, t, SMOOTH_S);
    this.nodes.panner.pan.setTargetAtTime(this.pan, t, SMOOTH_S);
  }

  start(ctx, when, offset, loop) {
    this.stop(when);
    if (!this.buffer || !this.nodes || offset >= this.buffer.duration) return;
    const src = ctx.createBufferSource();
    src.buffer = this.buffer;
    if (loop.on) {
      src.loop = true;
      src.loopStart = loop.start;
      src.loopEnd = loop.end;
    }
    src.connect(this.nodes.gain);
    if (this.mixer.diagnostics) src.connect(this.nodes.probe);
    src.start(when, offset);
    this.source = src;
    this.when = when;
    this.offset = offset;
    this.loop = { ...loop };
  }

  stop(when) {
    if (!this.source) return;
    try {
      this.source.stop(when);
    } catch (_err) {
      /* already stopped */
    }
    const old = this.source;
    const ctx = this.mixer.ctx;
    const delay = Math.max(0, (when - (ctx ? ctx.currentTime : 0)) * 1000) + 50;
    setTimeout(() => old.disconnect(), delay);
    this.source = null;
  }

  // Where this lane's own source is at context time t (null when it is not playing).
  positionAt(t) {
    if (!this.source) return null;
    let p = this.offset + Math.max(0, t - this.when);
    const l = this.loop;
    if (l && l.on && this.offset < l.end && p >= l.end) p = l.start + ((p - l.start) % (l.end - l.start));
    return p;
  }

  // Post-fader peak of the last analyser window (what the user actually hears). `level` holds
  // the highest value since the last report, so a report never misses a beat between frames.
  measureLevel() {
    if (!this.nodes) return 0;
    const data = this.nodes.meterBuf;
    this.nodes.meter.getFloatTimeDomainData(data);
    let peak = 0;
    for (let i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i]));
    this.level = Math.max(this.level, peak);
    return peak;
  }

  // Diagnostics: copy the last rendered pre-fader window (cheap; all lanes are read first).
  grabWindow() {
    if (!this.nodes || !this.buffer || !this.source) return false;
    this.nodes.probe.getFloatTimeDomainData(this.nodes.scratch);
    return true;
  }

  // True when the analyser still holds the window grabbed last (no quantum rendered since).
  windowUnchanged() {
    const again = (this.nodes.check ||= new Float32Array(PROBE_WINDOW));
    this.nodes.probe.getFloatTimeDomainData(again);
    const win = this.nodes.scratch;
    for (let i = 0; i < again.length; i++) if (again[i] !== win[i]) return false;
    return true;
  }

  // Where the grabbed window sits in this lane's buffer: normalised cross-correlation of the
  // window with the buffer's mono downmix around `expected` (the window's end, in frames).
  locateWindow(expected) {
    const win = this.nodes.scratch;
    const b = this.buffer;
    const left = b.getChannelData(0);
    const right = b.numberOfChannels > 1 ? b.getChannelData(1) : left;
    const n = win.length;
    let wEnergy = 0;
    for (let i = 0; i < n; i++) wEnergy += win[i] * win[i];
    if (wEnergy < 1e-6) return null;
    let best = -2;
    let bestEnd = null;
    for (let d = -PROBE_RADIUS; d <= PROBE_RADIUS; d++) {
      const end = expected + d;
      const start = end - n;
      if (start < 0 || end > left.length) continue;
      let dot = 0;
      let e = 0;
      for (let i = 0; i < n; i++) {
        const s = 0.5 * (left[start + i] + right[start + i]);
        dot += s * win[i];
        e += s * s;
      }
      const c = e > 0 ? dot / Math.sqrt(e * wEnergy) : -1;
      if (c > best) {
        best = c;
        bestEnd = end;
      }
    }
    return best > 0.98 ? bestEnd : null;
  }
}

// ---------------------------------------------------------------- the mixer
class Mixer {
  constructor(host) {
    this.host = host;
    this.ctx = null;
    this.lanes = [];
    this.playing = false;
    this.pausedAt = 0;
    this.startWhen = 0;
    this.startOffset = 0;
    this.loop = { on: false, start: 0, end: 0 };
    this.seq = 0;
    this.lastSent = "";
    this.reportTimer = null;
    this.reportDue = 0;
    this.periodic = null;
    this.raf = 0;
    this.disposeTimer = null;
    this.aborter = null;
    this.loadRequested = false;
    shared.mixers.add(this);
  }

  // ---- lifecycle
  attach(component) {
    clearTimeout(this.disposeTimer);
    this.disposed = false;
    this.setStateValue = component.setStateValue;
    const data = component.data || {};
    const sameJob = this.data && this.data.job === data.job && this.data.lanes.length === data.lanes.length;
    this.reportMs = Math.max(MIN_PERIODIC_MS, Number(data.report_ms) || 1000);
    this.diagnostics = Boolean(data.diagnostics);
    if (!sameJob) {
      this.reset(data);
      this.build();
    } else {
      this.data = data;
      if (!this.root || !this.root.isConnected) this.build();
    }
  }

  scheduleDispose() {
    clearTimeout(this.disposeTimer);
    this.disposeTimer = setTimeout(() => {
      if (!this.root || !this.root.isConnected) this.dispose();
    }, 1500);
  }

  dispose() {
    this.teardown();
    this.disposed = true;
    this.resizeObs?.disconnect();
    shared.mixers.delete(this);
    instances.delete(this.host);
  }

  // Stop and release the audio (used on dispose and when the mixer switches to another job).
  teardown() {
    this.pause(false);
    this.aborter?.abort();
    for (const lane of this.lanes) lane.disconnect();
    this.bus?.disconnect();
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    clearTimeout(this.reportTimer);
    clearInterval(this.periodic);
    this.reportTimer = null;
  }

  reset(data) {
    this.teardown();
    this.data = data;
    this.ctx = audioContext();
    this.bus = this.ctx.createGain();
    this.busMeter = this.ctx.createAnalyser();
    this.busMeter.fftSize = 1024;
    this.bus.connect(this.busMeter).connect(this.ctx.destination);
    this.lanes = (data.lanes || []).map((spec) => new Lane(this, spec));
    for (const lane of this.lanes) lane.connect(this.ctx, this.bus);
    this.duration = Number(data.duration_s) || Math.max(0, ...this.lanes.map((l) => l.duration || 0));
    this.playing = false;
    this.pausedAt = 0;
    this.loop = { on: false, start: 0, end: 0 };
    this.restore();
    this.updateAudio();
    this.estimate = this.lanes.reduce((sum, l) => sum + (l.duration || this.duration) * 44100 * 2 * 4, 0);
    this.loadRequested = this.estimate <= AUTO_LOAD_BYTES;
    if (this.loadRequested) this.loadAll();
    this.requestReport(TRANSPORT_REPORT_MS); // the restored settings, before any audio loads
  }

  storageKey() {
    return `stemdeck-mixer:${this.data.job}`;
  }

  restore() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(this.storageKey()) || "null");
      if (!saved) return;
      for (const lane of this.lanes) lane.apply(saved.lanes?.[lane.stem]);
      if (saved.loop && saved.loop.end > saved.loop.start) this.loop = { ...saved.loop, on: false };
    } catch (_err) {
      /* private mode or corrupt entry: start from defaults */
    }
  }

  persist() {
    try {
      const lanes = Object.fromEntries(this.lanes.map((l) => [l.stem, l.settings()]));
      sessionStorage.setItem(this.storageKey(), JSON.stringify({ lanes, loop: this.loop }));
    } catch (_err) {
      /* storage unavailable: settings just do not survive a reload */
    }
  }

  // ---- loading (lazy: the page and the waveforms are up before any audio is fetched)
  loadAll() {
    this.loadRequested = true;
    this.aborter = new AbortController();
    for (const lane of this.lanes) this.loadLane(lane, this.aborter.signal);
    this.renderStatus();
  }

  async loadLane(lane, signal) {
    try {
      lane.status = "loading";
      lane.progress = 0;
      this.renderLane(lane);
      const resp = await fetch(lane.url, { signal, credentials: "same-origin" });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const total = Number(resp.headers.get("Content-Length")) || 0;
      const reader = resp.body.getReader();
      const chunks = [];
      let got = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        got += value.length;
        lane.progress = total ? got / total : 0;
        this.renderLane(lane);
      }
      const bytes = new Uint8Array(got);
      let at = 0;
      for (const c of chunks) {
        bytes.set(c, at);
        at += c.length;
      }
      lane.bytes = got;
      lane.status = "decoding";
      this.renderLane(lane);
      const buffer = await decodeSlot(() => this.ctx.decodeAudioData(bytes.buffer));
      if (this.disposed || signal.aborted) return;
      lane.buffer = buffer;
      lane.status = "ready";
      this.duration = Math.max(this.duration, buffer.duration);
      if (this.playing) {
        // Join the running transport: same clock, its own future `when`.
        const when = this.nextWhen();
        lane.start(this.ctx, when, this.onGrid(this.positionAt(when)), this.loop);
      }
    } catch (err) {
      if (signal.aborted) return;
      lane.status = "error";
      lane.error = String(err && err.message ? err.message : err);
    }
    this.renderLane(lane);
    this.renderStatus();
    this.requestReport(TRANSPORT_REPORT_MS);
  }

  readyLanes() {
    return this.lanes.filter((l) => l.status === "ready");
  }

  // ---- transport
  positionAt(t) {
    if (!this.playing) return this.pausedAt;
    let p = this.startOffset + Math.max(0, t - this.startWhen);
    const l = this.loop;
    if (l.on && this.startOffset < l.end && p >= l.end) p = l.start + ((p - l.start) % (l.end - l.start));
    return p;
  }

  position() {
    return this.positionAt(this.ctx ? this.ctx.currentTime : 0);
  }

  async play() {
    if (this.playing || this.starting || !this.readyLanes().length) return;
    for (const m of shared.mixers) if (m !== this && m.playing) m.pause();
    this.starting = true;
    try {
      if (this.ctx.state !== "running") await this.ctx.resume();
    } finally {
      this.starting = false;
    }
    if (this.playing || this.disposed) return;
    if (this.pausedAt >= this.duration - 0.05) this.pausedAt = this.loop.on ? this.loop.start : 0;
    this.startAll(this.pausedAt);
    this.playing = true;
    this.announce(`Playing from ${fmtTime(this.pausedAt, false)}`);
    this.onTransport();
  }

  // A context time / buffer offset on the sample grid: sources then start on an exact frame
  // (no sub-sample interpolation), so every lane plays its buffer's own samples.
  onGrid(seconds) {
    const sr = this.ctx.sampleRate;
    return Math.round(seconds * sr) / sr;
  }

  nextWhen() {
    const sr = this.ctx.sampleRate;
    return Math.ceil((this.ctx.currentTime + START_LEAD_S) * sr) / sr;
  }

  // Every ready lane gets the same `when` and `offset`: they render in lock-step.
  startAll(offset) {
    const when = this.nextWhen();
    offset = this.onGrid(offset);
    for (const lane of this.readyLanes()) lane.start(this.ctx, when, offset, this.loop);
    this.startWhen = when;
    this.startOffset = offset;
  }

  pause(announce = true) {
    if (!this.playing) return;
    this.pausedAt = Math.min(this.position(), this.duration);
    const t = this.ctx.currentTime;
    for (const lane of this.lanes) lane.stop(t);
    this.playing = false;
    if (announce) this.announce(`Paused at ${fmtTime(this.pausedAt, false)}`);
    this.onTransport();
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  seek(seconds) {
    const target = clamp(seconds, 0, Math.max(0, this.duration - 0.01));
    if (this.loop.on && (target < this.loop.start || target >= this.loop.end)) this.loop.on = false;
    if (this.playing) this.startAll(target);
    else this.pausedAt = target;
    this.onTransport();
  }

  setLoop(start, end, on = true) {
    if (end - start < 0.05) return;
    const ms = (x) => Math.round(clamp(x, 0, this.duration) * 1000) / 1000;
    this.loop = { on, start: ms(start), end: ms(end) };
    const p = this.position();
    const target = on && (p < this.loop.start || p >= this.loop.end) ? this.loop.start : p;
    if (this.playing) this.startAll(target);
    else this.pausedAt = target;
    this.announce(on ? `Loop ${fmtTime(this.loop.start, false)} to ${fmtTime(this.loop.end, false)}` : "Loop off");
    this.persist();
    this.onTransport();
  }

  toggleLoop() {
    if (this.loop.end > this.loop.start) this.setLoop(this.loop.start, this.loop.end, !this.loop.on);
    else this.announce("Drag across a waveform to choose a loop region");
  }

  onTransport() {
    this.renderTransport();
    this.ensureAnimation();
    clearInterval(this.periodic);
    if (this.playing) this.periodic = setInterval(() => this.requestReport(0), this.reportMs);
    this.requestReport(TRANSPORT_REPORT_MS);
  }

  // ---- settings
  anySolo() {
    return this.lanes.some((l) => l.solo);
  }

  updateAudio() {
    const anySolo = this.anySolo();
    for (const lane of this.lanes) lane.updateAudio(this.ctx, anySolo);
  }

  changed(lane) {
    this.updateAudio();
    this.persist();
    if (lane) this.renderLane(lane);
    else this.lanes.forEach((l) => this.renderLane(l));
    this.redrawWaves();
    this.requestReport(SETTINGS_REPORT_MS);
  }

  toggleMute(lane) {
    lane.mute = !lane.mute;
    this.announce(`${lane.label} ${lane.mute ? "muted" : "unmuted"}`);
    this.changed(lane);
  }

  toggleSolo(lane) {
    lane.solo = !lane.solo;
    this.announce(`${lane.label} ${lane.solo ? "soloed" : "solo off"}`);
    this.changed(null);
  }

  applyPreset(name) {
    const preset = (this.data.presets || []).find((p) => p.name === name);
    for (const lane of this.lanes) {
      lane.gainDb = 0;
      lane.mute = false;
      lane.solo = false;
      lane.pan = 0;
      if (preset) lane.apply(preset.lanes[lane.stem]);
    }
    this.announce(preset ? `${preset.label} mix` : "Mix reset");
    this.changed(null);
  }

  // ---- reporting to Python (each report reruns the mixer fragment: keep them rare)
  requestReport(delay) {
    const due = performance.now() + delay;
    if (this.reportTimer && this.reportDue <= due) return;
    clearTimeout(this.reportTimer);
    this.reportDue = due;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = null;
      this.sendReport();
    }, delay);
  }

  snapshot() {
    const t = this.ctx.currentTime;
    const anySolo = this.anySolo();
    const lanes = this.lanes.map((l) => {
      const pos = this.playing ? l.positionAt(t) : l.status === "ready" ? this.pausedAt : null;
      return {
        stem: l.stem,
        ...l.settings(),
        audible: l.audible(anySolo),
        status: l.status,
        error: l.error,
        position_s: pos === null ? null : Number(pos.toFixed(6)),
        // peak since the previous report; below −100 dB counts as silent
        level_db: l.level > 1e-5 ? Number((20 * Math.log10(l.level)).toFixed(1)) : null,
      };
    });
    const state = {
      playing: this.playing,
      position_s: Number(this.positionAt(t).toFixed(6)),
      duration_s: Number(this.duration.toFixed(3)),
      ready: this.lanes.every((l) => l.status === "ready"),
      loop: { enabled: this.loop.on, start_s: this.loop.start, end_s: this.loop.end },
      context: { state: this.ctx.state, sample_rate: this.ctx.sampleRate },
      lanes,
    };
    if (this.diagnostics) state.sync = this.measureSync();
    return state;
  }

  sendReport() {
    if (this.disposed || !this.setStateValue) return;
    for (const lane of this.lanes) lane.measureLevel();
    const state = this.snapshot();
    for (const lane of this.lanes) lane.level = 0;
    const body = JSON.stringify(state);
    if (body === this.lastSent) return; // nothing new: no server rerun
    this.lastSent = body;
    state.seq = ++this.seq;
    this.setStateValue("state", state);
  }

  // Diagnostics only: the real rendered position of each lane, from its own audio, in frames.
  measureSync() {
    if (!this.playing || this.loop.on) return null;
    const sr = this.ctx.sampleRate;
    const t = this.ctx.currentTime;
    // Grab every lane's window back to back, then do the (slow) correlation: the audio thread
    // keeps rendering meanwhile, and windows grabbed later would look "ahead". A snapshot
    // counts only if no render quantum landed between the first and the last grab.
    let grabbed = [];
    let consistent = false;
    for (let attempt = 0; attempt < 5 && !consistent; attempt++) {
      grabbed = this.readyLanes().filter((lane) => lane.grabWindow());
      consistent = grabbed.every((lane) => lane.windowUnchanged());
    }
    if (!consistent) return null;
    const transport = Math.round((this.startOffset + (t - this.startWhen)) * sr);
    const offsets = {};
    const found = [];
    for (const lane of grabbed) {
      const expected = Math.round((lane.offset + (t - lane.when)) * sr);
      const at = lane.locateWindow(expected);
      offsets[lane.stem] = at === null ? null : at - transport;
      if (at !== null) found.push(at - transport);
    }
    const spread = found.length ? Math.max(...found) - Math.min(...found) : null;
    return { at_s: Number(t.toFixed(4)), offsets_frames: offsets, spread_frames: spread, lanes_measured: found.length };
  }

  announce(text) {
    if (this.live) this.live.textContent = text;
  }

  // ---------------------------------------------------------------- DOM
  build() {
    const host = this.host;
    const mount = host.querySelector(".sdm-mount") || host;
    mount.replaceChildren();
    const d = this.data;
    this.playBtn = h("button", { class: "sdm-play", type: "button", "aria-label": "Play", "aria-keyshortcuts": "Space", title: "Play / pause (Space)", onclick: () => this.toggle() });
    this.timeCur = h("span", { class: "sdm-cur" }, "0:00.0");
    this.timeTot = h("span", { class: "sdm-tot" }, fmtTime(this.duration));
    this.loopBtn = h("button", { class: "sdm-loop", type: "button", "aria-pressed": "false", "aria-keyshortcuts": "L", title: "Loop the selected region (L). Drag across a waveform to select.", onclick: () => this.toggleLoop() });
    this.statusEl = h("span", { class: "sdm-status", role: "status" });
    this.loadBtn = h("button", { class: "sdm-chip sdm-load", type: "button", hidden: true, onclick: () => this.loadAll() });
    const presets = (d.presets || []).map((p) => h("button", { class: "sdm-chip", type: "button", title: p.description, onclick: () => this.applyPreset(p.name) }, p.label));
    presets.push(h("button", { class: "sdm-chip", type: "button", title: "All lanes back to 0 dB, centre, no mute or solo", onclick: () => this.applyPreset(null) }, "Reset"));
    this.busMeterEl = h("div", { class: "sdm-busmeter", title: "Output level (red: clipping)" }, h("i"));
    const bar = h(
      "div",
      { class: "sdm-bar" },
      this.playBtn,
      h("button", { class: "sdm-icon", type: "button", "aria-label": "Back to start", "aria-keyshortcuts": "Home", title: "Back to start (Home)", onclick: () => this.seek(this.loop.on ? this.loop.start : 0) }, icon("start", 14)),
      h("div", { class: "sdm-time", "aria-label": "Playback position" }, this.timeCur, h("span", { class: "sdm-sep" }, " / "), this.timeTot),
      this.loopBtn,
      h("div", { class: "sdm-grow" }),
      this.statusEl,
      this.loadBtn,
      h("div", { class: "sdm-presets", role: "group", "aria-label": "Quick mixes" }, ...presets),
      h("div", { class: "sdm-out", "aria-hidden": "true" }, h("span", {}, "OUT"), this.busMeterEl),
    );
    this.ruler = h("canvas", { class: "sdm-ruler", "aria-hidden": "true" });
    this.rulerWrap = h(
      "div",
      { class: "sdm-wave sdm-rulerwave", role: "slider", tabindex: "0", "aria-label": "Playback position (arrow keys: 5 s)", "aria-valuemin": "0", "aria-valuemax": String(Math.round(this.duration)) },
      this.ruler,
      h("div", { class: "sdm-loopzone" }),
      h("div", { class: "sdm-head" }),
    );
    const rulerWrap = this.rulerWrap;
    this.bindSeek(rulerWrap, null);
    const head = h("div", { class: "sdm-lanehead" }, h("div", { class: "sdm-hint" }, h("kbd", {}, "Space"), " play ", h("kbd", {}, "M"), h("kbd", {}, "S"), " mute/solo ", h("kbd", {}, "L"), " loop"), rulerWrap);
    const lanesEl = h("div", { class: "sdm-lanes" }, head, ...this.lanes.map((l) => this.buildLane(l)));
    this.live = h("div", { class: "sdm-sr", "aria-live": "polite" });
    this.root = h(
      "div",
      { class: "sdm", tabindex: "0", role: "region", "aria-label": `Stem mixer${d.title ? `: ${d.title}` : ""}`, "aria-roledescription": "multitrack mixer", onkeydown: (e) => this.onKey(e) },
      bar,
      lanesEl,
      this.live,
    );
    mount.append(this.root);
    this.resizeObs?.disconnect();
    this.resizeObs = new ResizeObserver(() => this.redrawWaves());
    this.resizeObs.observe(lanesEl);
    this.lanes.forEach((l) => this.renderLane(l));
    this.renderTransport();
    this.renderStatus();
    this.redrawWaves();
  }

  buildLane(lane) {
    const id = `${lane.stem}`;
    const el = {};
    el.mute = h("button", { class: "sdm-m", type: "button", "aria-pressed": "false", "aria-label": `Mute ${lane.label}`, "aria-keyshortcuts": "M", title: "Mute (M)", onclick: () => this.toggleMute(lane) }, "M");
    el.solo = h("button", { class: "sdm-s", type: "button", "aria-pressed": "false", "aria-label": `Solo ${lane.label}`, "aria-keyshortcuts": "S", title: "Solo (S)", onclick: () => this.toggleSolo(lane) }, "S");
    el.vol = h("input", { class: "sdm-vol", type: "range", min: MIN_DB, max: MAX_DB, step: 0.5, value: lane.gainDb, "aria-label": `${lane.label} volume`, title: "Volume (double-click: 0 dB)" });
    el.vol.addEventListener("input", () => {
      lane.gainDb = Number(el.vol.value);
      this.changed(lane);
    });
    el.vol.addEventListener("dblclick", () => {
      lane.gainDb = 0;
      this.changed(lane);
    });
    el.db = h("output", { class: "sdm-db" });
    el.pan = h("input", { class: "sdm-pan", type: "range", min: -1, max: 1, step: 0.02, value: lane.pan, "aria-label": `${lane.label} pan`, title: "Pan (double-click: centre)" });
    el.pan.addEventListener("input", () => {
      lane.pan = Math.abs(Number(el.pan.value)) < 0.015 ? 0 : Number(el.pan.value);
      this.changed(lane);
    });
    el.pan.addEventListener("dblclick", () => {
      lane.pan = 0;
      this.changed(lane);
    });
    el.panOut = h("output", { class: "sdm-panout" });
    el.meter = h("div", { class: "sdm-meter", "aria-hidden": "true" }, h("i"));
    el.lstatus = h("span", { class: "sdm-lstatus" });
    el.dim = h("canvas", { class: "sdm-dim", "aria-hidden": "true" });
    el.lit = h("canvas", { class: "sdm-lit", "aria-hidden": "true" });
    el.veil = h("div", { class: "sdm-veil" });
    el.wave = h(
      "div",
      { class: "sdm-wave", role: "img", "aria-label": `${lane.label} waveform (click to seek, drag to select a loop)` },
      el.dim,
      el.lit,
      h("div", { class: "sdm-loopzone" }),
      h("div", { class: "sdm-head" }),
      el.veil,
    );
    this.bindSeek(el.wave, lane);
    el.row = h(
      "div",
      { class: "sdm-lane", role: "group", tabindex: "0", "data-stem": id, "aria-label": `${lane.label} lane`, style: `--lane:${lane.colour}` },
      h(
        "div",
        { class: "sdm-strip" },
        h("div", { class: "sdm-name" }, h("span", { class: "sdm-dot" }), h("span", { class: "sdm-label" }, lane.label), el.lstatus, h("span", { class: "sdm-grow" }), el.mute, el.solo),
        h("div", { class: "sdm-ctl" }, el.vol, el.db, el.pan, el.panOut),
        el.meter,
      ),
      el.wave,
    );
    lane.el = el;
    return el.row;
  }

  // Click = seek; drag = choose a loop region (then loop is switched on).
  bindSeek(wave, lane) {
    let down = null;
    const timeAt = (ev) => {
      const r = wave.getBoundingClientRect();
      return clamp((ev.clientX - r.left) / Math.max(1, r.width), 0, 1) * this.duration;
    };
    wave.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      wave.setPointerCapture(ev.pointerId);
      down = { x: ev.clientX, t: timeAt(ev), dragging: false };
      if (lane) lane.el.row.focus({ preventScroll: true });
    });
    wave.addEventListener("pointermove", (ev) => {
      if (!down) return;
      if (!down.dragging && Math.abs(ev.clientX - down.x) > 4) down.dragging = true;
      if (down.dragging) {
        const t = timeAt(ev);
        this.dragLoop = { start: Math.min(down.t, t), end: Math.max(down.t, t) };
        this.renderLoopZones();
      }
    });
    const up = (ev) => {
      if (!down) return;
      const d = down;
      down = null;
      if (d.dragging && this.dragLoop) {
        const { start, end } = this.dragLoop;
        this.dragLoop = null;
        this.setLoop(start, end, true);
      } else if (ev.type === "pointerup") {
        this.seek(timeAt(ev));
      }
      this.renderLoopZones();
    };
    wave.addEventListener("pointerup", up);
    wave.addEventListener("pointercancel", up);
  }

  onKey(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const active = this.host.activeElement || document.activeElement;
    const lane = this.lanes.find((l) => l.el && l.el.row.contains(active)) || null;
    const k = e.key;
    if (k === " " || k === "Spacebar") this.toggle();
    else if ((k === "m" || k === "M") && lane) this.toggleMute(lane);
    else if ((k === "s" || k === "S") && lane) this.toggleSolo(lane);
    else if (k === "l" || k === "L") this.toggleLoop();
    else if (k === "Home") this.seek(this.loop.on ? this.loop.start : 0);
    else if (k === "End") this.seek(this.duration);
    else if ((k === "ArrowLeft" || k === "ArrowRight") && !(e.target instanceof HTMLInputElement)) this.seek(this.position() + (k === "ArrowLeft" ? -5 : 5));
    else if (/^[1-9]$/.test(k) && this.lanes[Number(k) - 1]) this.lanes[Number(k) - 1].el.row.focus();
    else return;
    e.preventDefault();
    e.stopPropagation();
  }

  // ---- rendering
  renderTransport() {
    if (!this.root) return;
    const playing = this.playing;
    this.playBtn.replaceChildren(icon(playing ? "pause" : "play", 18));
    this.playBtn.setAttribute("aria-label", playing ? "Pause" : "Play");
    this.playBtn.classList.toggle("is-on", playing);
    this.playBtn.disabled = !this.readyLanes().length;
    this.timeTot.textContent = fmtTime(this.duration);
    this.rulerWrap.setAttribute("aria-valuemax", String(Math.round(this.duration)));
    const hasRegion = this.loop.end > this.loop.start;
    this.loopBtn.setAttribute("aria-pressed", String(this.loop.on));
    this.loopBtn.classList.toggle("is-on", this.loop.on);
    this.loopBtn.replaceChildren(icon("loop", 14), "Loop", h("small", {}, hasRegion ? ` ${fmtTime(this.loop.start)}–${fmtTime(this.loop.end)}` : " drag a region"));
    this.loopBtn.setAttribute("aria-label", hasRegion ? `Loop ${fmtTime(this.loop.start, false)} to ${fmtTime(this.loop.end, false)}` : "Loop (drag across a waveform to select a region first)");
    this.renderLoopZones();
    this.renderPlayhead();
  }

  renderLoopZones() {
    if (!this.root) return;
    const z = this.dragLoop || (this.loop.end > this.loop.start ? this.loop : null);
    for (const zone of this.root.querySelectorAll(".sdm-loopzone")) {
      if (!z || !this.duration) {
        zone.hidden = true;
        continue;
      }
      zone.hidden = false;
      zone.style.left = `${(100 * z.start) / this.duration}%`;
      zone.style.width = `${(100 * (z.end - z.start)) / this.duration}%`;
      zone.classList.toggle("is-on", Boolean(this.dragLoop) || this.loop.on);
    }
  }

  renderPlayhead() {
    if (!this.root) return;
    const p = this.position();
    const frac = this.duration ? clamp(p / this.duration, 0, 1) : 0;
    this.timeCur.textContent = fmtTime(p);
    for (const head of this.root.querySelectorAll(".sdm-head")) head.style.left = `${100 * frac}%`;
    for (const lane of this.lanes) if (lane.el) lane.el.lit.style.clipPath = `inset(0 ${100 - 100 * frac}% 0 0)`;
    const now = String(Math.round(p));
    if (this.rulerWrap.getAttribute("aria-valuenow") !== now) {
      this.rulerWrap.setAttribute("aria-valuenow", now);
      this.rulerWrap.setAttribute("aria-valuetext", `${fmtTime(p, false)} of ${fmtTime(this.duration, false)}`);
    }
  }

  renderMeters() {
    for (const lane of this.lanes) {
      if (!lane.el) continue;
      const level = this.playing ? lane.measureLevel() : 0;
      lane.meterHold = Math.max(level, lane.meterHold * 0.9);
      const db = lane.meterHold > 0 ? 20 * Math.log10(lane.meterHold) : -100;
      lane.el.meter.firstChild.style.height = `${clamp((db + 60) / 60, 0, 1) * 100}%`;
    }
    if (!this.busMeter) return;
    const buf = (this.busBuf ||= new Float32Array(this.busMeter.fftSize));
    this.busMeter.getFloatTimeDomainData(buf);
    let peak = 0;
    for (let i = 0; i < buf.length; i++) peak = Math.max(peak, Math.abs(buf[i]));
    this.busHold = Math.max(this.playing ? peak : 0, (this.busHold || 0) * 0.9);
    const db = this.busHold > 0 ? 20 * Math.log10(this.busHold) : -100;
    this.busMeterEl.firstChild.style.width = `${clamp((db + 60) / 60, 0, 1) * 100}%`;
    if (peak >= 1) this.clipUntil = performance.now() + 1500;
    this.busMeterEl.classList.toggle("is-clip", performance.now() < (this.clipUntil || 0));
  }

  ensureAnimation() {
    if (this.raf) return;
    const tick = () => {
      this.raf = 0;
      if (this.disposed) return;
      if (this.playing && !this.loop.on && this.position() >= this.duration) {
        this.pause(false);
        this.pausedAt = 0;
        this.announce("End of track");
        this.onTransport();
      }
      this.renderPlayhead();
      this.renderMeters();
      if (this.playing || this.busHold > 1e-4) this.raf = requestAnimationFrame(tick);
    };
    this.raf = requestAnimationFrame(tick);
  }

  renderLane(lane) {
    const el = lane.el;
    if (!el) return;
    const anySolo = this.anySolo();
    el.mute.setAttribute("aria-pressed", String(lane.mute));
    el.solo.setAttribute("aria-pressed", String(lane.solo));
    el.row.classList.toggle("is-silent", !lane.audible(anySolo));
    el.row.classList.toggle("is-solo", lane.solo);
    el.vol.value = String(lane.gainDb);
    el.vol.setAttribute("aria-valuetext", fmtDb(lane.gainDb));
    el.db.textContent = fmtDb(lane.gainDb);
    el.pan.value = String(lane.pan);
    el.pan.setAttribute("aria-valuetext", panText(lane.pan));
    el.panOut.textContent = fmtPan(lane.pan);
    const s = lane.status;
    const text =
      s === "loading" ? `Loading ${Math.round(lane.progress * 100)}%` : s === "decoding" ? "Decoding…" : s === "error" ? "Could not load audio" : s === "waiting" ? (this.loadRequested ? "Queued" : "Not loaded") : "";
    el.lstatus.textContent = s === "error" ? "not loaded" : "";
    el.veil.textContent = text;
    el.veil.hidden = s === "ready";
    el.veil.classList.toggle("is-error", s === "error");
    el.veil.style.setProperty("--p", `${Math.round(lane.progress * 100)}%`);
    el.row.setAttribute("aria-busy", String(s === "loading" || s === "decoding"));
    if (lane.error) el.veil.title = lane.error;
  }

  renderStatus() {
    if (!this.root) return;
    const ready = this.readyLanes().length;
    const failed = this.lanes.filter((l) => l.status === "error").length;
    const n = this.lanes.length;
    this.loadBtn.hidden = this.loadRequested;
    if (!this.loadRequested) {
      this.loadBtn.textContent = `Load audio (≈${fmtBytes(this.estimate)} of memory)`;
      this.statusEl.textContent = "Long job: audio loads on request";
    } else if (failed) this.statusEl.textContent = `${failed} of ${n} stems failed to load`;
    else this.statusEl.textContent = ready < n ? `Loading stems ${ready}/${n}…` : "";
    this.renderTransport();
  }

  redrawWaves() {
    if (!this.root) return;
    const anySolo = this.anySolo();
    for (const lane of this.lanes) {
      if (!lane.el) continue;
      const silent = !lane.audible(anySolo);
      drawWave(lane.el.dim, lane.peaks, silent ? "rgba(140,146,160,0.22)" : lane.colour, silent ? 1 : 0.32);
      drawWave(lane.el.lit, lane.peaks, silent ? "rgba(140,146,160,0.45)" : lane.colour, 1);
    }
    drawRuler(this.ruler, this.duration);
    this.renderPlayhead();
  }
}

function fitCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const hgt = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== hgt) {
    canvas.width = w;
    canvas.height = hgt;
  }
  return { w, h: hgt, dpr };
}

// Min/max envelope, one column per device pixel (max of maxs, min of mins per bucket).
function drawWave(canvas, peaks, colour, alpha) {
  const { w, h: hgt } = fitCanvas(canvas);
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, hgt);
  const n = peaks.maxs.length;
  if (!n) return;
  g.globalAlpha = alpha;
  g.fillStyle = colour;
  const mid = hgt / 2;
  const scale = (hgt / 2) * 0.92;
  for (let x = 0; x < w; x++) {
    const a = Math.floor((x * n) / w);
    const b = Math.max(a + 1, Math.floor(((x + 1) * n) / w));
    let hi = -1;
    let lo = 1;
    for (let i = a; i < b && i < n; i++) {
      hi = Math.max(hi, peaks.maxs[i]);
      lo = Math.min(lo, peaks.mins[i]);
    }
    const top = mid - Math.max(hi, 0.004) * scale;
    const bottom = mid - Math.min(lo, -0.004) * scale;
    g.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
  g.globalAlpha = 1;
}

function drawRuler(canvas, duration) {
  const { w, h: hgt, dpr } = fitCanvas(canvas);
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, hgt);
  if (!duration) return;
  const style = getComputedStyle(canvas);
  g.fillStyle = style.color;
  g.strokeStyle = style.color;
  g.font = `${10 * dpr}px ${style.fontFamily}`;
  g.textBaseline = "top";
  const pxPerS = w / duration;
  const step = [1, 2, 5, 10, 15, 30, 60, 120, 300].find((s) => s * pxPerS >= 64 * dpr) || 600;
  g.globalAlpha = 0.55;
  for (let t = 0; t <= duration; t += step) {
    const x = Math.round(t * pxPerS) + 0.5;
    g.fillRect(x, hgt - 5 * dpr, 1, 5 * dpr);
    if (x < w - 28 * dpr) g.fillText(fmtTime(t, false), x + 3 * dpr, 2 * dpr);
  }
  g.globalAlpha = 1;
}

export default function (component) {
  const host = component.parentElement;
  let mixer = instances.get(host);
  if (!mixer || mixer.disposed) {
    mixer = new Mixer(host);
    instances.set(host, mixer);
  }
  mixer.attach(component);
  return () => mixer.scheduleDispose();
}
