// The progress chart, drawn on a canvas (fast at 10,000 points): every experiment that ran
// is a point (kept, discarded, crashed), the running best a staircase with a ±σ̂ band, the
// baseline a dashed line, kept points labelled. Text goes through fillText or textContent.
"use strict";

const RAN = new Set(["keep", "discard", "crash", "pruned"]);

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))));
  return sorted[i];
}

// Round tick values ("nice numbers") between lo and hi, about n of them.
function niceTicks(lo, hi, n) {
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  return { ticks, label: (v) => v.toFixed(digits) };
}

function shorten(s, n) {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

class ProgressChart {
  constructor(canvas, tooltip, onOpen) {
    this.canvas = canvas;
    this.tooltip = tooltip;
    this.onOpen = onOpen;
    this.rows = [];
    this.session = null;
    this.points = []; // {row, px, py}
    this.hover = null;
    this.pending = false;
    canvas.addEventListener("mousemove", (e) => this.move(e));
    canvas.addEventListener("mouseleave", () => this.hide());
    canvas.addEventListener("click", (e) => {
      const p = this.nearest(e);
      if (p) this.onOpen(p.row.id);
    });
    new ResizeObserver(() => this.request()).observe(canvas);
  }

  set(rows, session) {
    this.rows = rows;
    this.session = session;
    this.request();
  }

  // Redraws at the next frame, once however many updates arrived.
  request() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const minimize = !this.session || this.session.direction !== "maximize";
    const ran = this.rows.filter((r) => RAN.has(r.status));
    const valued = ran.filter((r) => r.metric !== null && r.metric !== undefined && r.status !== "crash");
    const kept = valued.filter((r) => r.status === "keep");
    const pad = { l: 64, r: 16, t: 30, b: 34 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    const font = "12px system-ui, sans-serif";
    g.font = font;
    const fg = css("--fg"), muted = css("--muted"), line = css("--line");
    if (!ran.length) {
      g.fillStyle = muted;
      g.fillText("No experiment has finished yet.", pad.l, pad.t + 20);
      this.points = [];
      c.dataset.points = "0";
      return;
    }
    // The y-range: every kept value and the bulk of the rest (wild regressions are drawn at
    // the edge rather than squashing the staircase flat).
    const vals = valued.map((r) => r.metric).sort((a, b) => a - b);
    let lo = Math.min(quantile(vals, 0.02), ...kept.map((r) => r.metric));
    let hi = Math.max(quantile(vals, 0.98), ...kept.map((r) => r.metric));
    if (this.session && this.session.baseline != null) {
      lo = Math.min(lo, this.session.baseline);
      hi = Math.max(hi, this.session.baseline);
    }
    if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-12) { lo -= 0.5 * (Math.abs(lo) || 1) * 0.01; hi += 0.5 * (Math.abs(hi) || 1) * 0.01; }
    const span = hi - lo;
    lo -= span * 0.08; hi += span * 0.08;
    let x0 = Infinity, x1 = -Infinity;
    for (const r of ran) { x0 = Math.min(x0, r.iteration); x1 = Math.max(x1, r.iteration); }
    if (x1 - x0 < 1) x1 = x0 + 1;
    const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * pw;
    const Y = (y) => pad.t + (1 - (Math.min(hi, Math.max(lo, y)) - lo) / (hi - lo)) * ph;
    const crashY = pad.t + ph - 4;

    // Grid and axes.
    g.strokeStyle = line; g.lineWidth = 1; g.fillStyle = muted;
    g.textAlign = "right"; g.textBaseline = "middle";
    const yt = niceTicks(lo, hi, 5);
    for (const v of yt.ticks) {
      const y = Y(v);
      g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
      g.fillText(yt.label(v), pad.l - 6, y);
    }
    g.textAlign = "center"; g.textBaseline = "top";
    const xt = niceTicks(x0, x1, Math.min(10, Math.max(1, pw / 90)));
    for (const v of xt.ticks) {
      if (Math.abs(v - Math.round(v)) > 1e-9) continue;
      g.fillText(String(Math.round(v)), X(v), pad.t + ph + 6);
    }
    g.fillText("experiment", pad.l + pw / 2, pad.t + ph + 19);

    // The staircase of the running best (and its noise band).
    const steps = [];
    let best = null;
    for (const r of kept.slice().sort((a, b) => a.iteration - b.iteration || a.id - b.id)) {
      if (best === null || (minimize ? r.metric < best : r.metric > best)) {
        best = r.metric;
        steps.push([r.iteration, best, r]);
      }
    }
    const sigma = this.session && this.session.noise ? this.session.noise.sigma : null;
    if (steps.length) {
      const path = (off) => {
        const pts = [];
        steps.forEach(([x, y], i) => {
          if (i) pts.push([x, steps[i - 1][1] + off]);
          pts.push([x, y + off]);
        });
        pts.push([x1, steps[steps.length - 1][1] + off]);
        return pts;
      };
      if (sigma) {
        const up = path(sigma), down = path(-sigma).reverse();
        g.fillStyle = css("--band");
        g.beginPath();
        up.concat(down).forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
        g.closePath(); g.fill();
      }
      g.strokeStyle = css("--best"); g.lineWidth = 2;
      g.beginPath();
      path(0).forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
      g.stroke();
    }
    if (this.session && this.session.baseline != null) {
      g.strokeStyle = css("--baseline"); g.lineWidth = 1.5; g.setLineDash([6, 4]);
      g.beginPath(); g.moveTo(pad.l, Y(this.session.baseline)); g.lineTo(w - pad.r, Y(this.session.baseline)); g.stroke();
      g.setLineDash([]);
    }

    // The points: discarded first (underneath), then crashed, then kept.
    const r0 = ran.length > 2000 ? 2 : ran.length > 300 ? 3 : 4;
    this.points = [];
    const colors = { keep: css("--keep"), discard: css("--discard"), crash: css("--crash") };
    for (const status of ["discard", "crash", "keep"]) {
      g.fillStyle = colors[status];
      g.strokeStyle = colors[status];
      g.beginPath();
      for (const r of ran) {
        // A pruned run is drawn with the discards (its value, where it has one, is the
        // curve's at the stop).
        if ((r.status === "pruned" ? "discard" : r.status) !== status) continue;
        const px = X(r.iteration);
        const has = r.metric !== null && r.metric !== undefined && status !== "crash";
        const py = has ? Y(r.metric) : crashY;
        this.points.push({ row: r, px, py });
        if (status === "crash") {
          g.moveTo(px - r0, py - r0); g.lineTo(px + r0, py + r0);
          g.moveTo(px + r0, py - r0); g.lineTo(px - r0, py + r0);
        } else {
          const rr = status === "keep" ? r0 + 1.5 : r0;
          g.moveTo(px + rr, py); g.arc(px, py, rr, 0, Math.PI * 2);
        }
      }
      if (status === "crash") { g.lineWidth = 1.5; g.stroke(); } else { g.globalAlpha = status === "discard" ? 0.7 : 1; g.fill(); g.globalAlpha = 1; }
    }

    // Labels on the improvements (the most recent 40 when there are more).
    g.fillStyle = fg; g.textAlign = "left"; g.textBaseline = "bottom"; g.font = "11px system-ui, sans-serif";
    const improvements = steps.map((st) => st[2]);
    // Every improvement when there are few; else the twelve biggest steps. A label is
    // left out where it would run into one already placed.
    let chosen = improvements.map((r, i) => ({ r, gain: i ? Math.abs(steps[i - 1][1] - r.metric) : Infinity }));
    const all = chosen.length <= 15;
    if (!all) chosen = chosen.sort((a, b) => b.gain - a.gain);
    const placed = [];
    for (const { r } of chosen) {
      if (!all && placed.length >= 12) break;
      const lx = X(r.iteration), ly = Y(r.metric);
      if (placed.some(([px, py]) => Math.abs(px - lx) < 150 && Math.abs(py - ly) < 24)) continue;
      placed.push([lx, ly]);
      g.save();
      const nearEdge = X(r.iteration) > w - pad.r - 160;
      g.textAlign = nearEdge ? "right" : "left";
      g.translate(X(r.iteration) + (nearEdge ? -5 : 5), Y(r.metric) - 5);
      g.rotate(-Math.PI / 10);
      g.fillText(shorten(r.description, 36), 0, 0);
      g.restore();
    }
    c.dataset.points = String(this.points.length);
    if (this.hover) {
      // The same experiment, where it is drawn now (the scale may have changed).
      this.hover = this.points.find((p) => p.row.id === this.hover.row.id) || null;
      if (this.hover) this.ring(g, this.hover);
    }
  }

  ring(g, p) {
    g.strokeStyle = css("--accent"); g.lineWidth = 2;
    g.beginPath(); g.arc(p.px, p.py, 7, 0, Math.PI * 2); g.stroke();
  }

  nearest(e) {
    const rect = this.canvas.getBoundingClientRect();
    const mx = e.clientX - rect.left, my = e.clientY - rect.top;
    let best = null, bd = 12 * 12;
    for (const p of this.points) {
      const d = (p.px - mx) ** 2 + (p.py - my) ** 2;
      if (d <= bd) { bd = d; best = p; }
    }
    return best;
  }

  move(e) {
    const p = this.nearest(e);
    if (!p) { this.hide(); return; }
    if (this.hover !== p) { this.hover = p; this.draw(); }
    const r = p.row, t = this.tooltip;
    t.textContent = "";
    const head = document.createElement("strong");
    head.textContent = `#${r.id} · ${r.status}` + (r.metric != null ? ` · ${fmt(r.metric)}` : "");
    const body = document.createElement("div");
    body.textContent = r.description;
    t.append(head, body);
    t.hidden = false;
    const wrap = this.canvas.parentElement.getBoundingClientRect();
    const left = Math.min(p.px + 12, wrap.width - 300);
    t.style.left = `${Math.max(0, left)}px`;
    t.style.top = `${Math.max(0, p.py - 50)}px`;
  }

  hide() {
    this.tooltip.hidden = true;
    if (this.hover) { this.hover = null; this.request(); }
  }

  // Where experiment `id` is drawn, in viewport pixels (tests click there).
  positionOf(id) {
    const p = this.points.find((q) => q.row.id === id);
    if (!p) return null;
    const rect = this.canvas.getBoundingClientRect();
    return { x: Math.round(rect.left + p.px), y: Math.round(rect.top + p.py) };
  }
}

function fmt(v) {
  if (v === null || v === undefined) return "—";
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(4) : v.toFixed(6).replace(/0+$/, "").replace(/\.$/, ".0");
}
