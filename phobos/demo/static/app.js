// Phobos live dashboard: Server-Sent Events in, canvas out, controls posted back.
// Everything is drawn here with the canvas API; nothing is loaded from another host.
// One file, so that the page costs the server two requests (the dashboard serves a bounded
// number at once): labels that never overlap, the timeline, the sampling view, then the page.
"use strict";

// ---------------------------------------------------------------- Labels that never overlap
// A label goes to the first of its candidate offsets where its box stays on the canvas and
// clear of every label placed before it in this frame; where none is free it is left out
// (the legend and the hover tooltips still say it). Every placed label is recorded in
// window.phobosDashboard.labels[canvas id], which the browser test reads.
const LABEL_HEIGHT = 12;
const OFFSETS = [[8, -6], [8, 12], [-8, -6], [-8, 12], [8, 26], [-8, 26], [8, -20], [-8, -20]];

// The light-time labels of messages drawn so far (the latest 20), for the browser test.
function noteFlightLabel(text) {
  const labels = window.phobosDashboard.flightLabels;
  labels.push(text);
  if (labels.length > 20) labels.shift();
}

function labelBoard(canvas) {
  const board = { canvas, ctx: canvas.getContext("2d"), boxes: [], blocked: [] };
  window.phobosDashboard.labels[canvas.id] = board.boxes;
  return board;
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

// Keep labels off a region (a body, the Earth disc) without drawing anything there.
function blockRegion(board, x, y, w, h) {
  board.blocked.push({ x, y, w, h });
}

// Place `text` near (x, y); return the box placed, or null when no candidate was free.
function placeLabel(board, text, x, y, kind, color, offsets = OFFSETS) {
  const ctx = board.ctx, w = Math.ceil(ctx.measureText(text).width) + 2, h = LABEL_HEIGHT;
  for (const [dx, dy] of offsets) {
    const left = dx >= 0 ? x + dx : x + dx - w;
    const box = { x: left, y: y + dy - h + 2, w, h, text, kind };
    if (box.x < 0 || box.y < 0 || box.x + w > board.canvas.width || box.y + h > board.canvas.height) continue;
    if (board.boxes.some((b) => overlaps(b, box)) || board.blocked.some((b) => overlaps(b, box))) continue;
    ctx.fillStyle = color;
    ctx.fillText(text, box.x + 1, y + dy);
    board.boxes.push(box);
    return box;
  }
  return null;
}

// ---------------------------------------------------------------- The activity timeline, its legend and tooltips
// One colour means one activity on every row: the episode's tables map each agent's actions
// to the task's activities (episode.activities). A span the agent did not choose is marked:
// hatched amber where it got the safe default while connected (no usable action in time),
// hatched red where it was lost or had not joined yet.
const ACTIVITY_COLORS = ["#55606f", "#4fb86b", "#4f8fe0", "#d6a34a", "#b070d0", "#50c8c8",
  "#e07a9a", "#c8c850", "#8f6fe0"];
const MARKS = ["", "safe default", "lost / not joined"];
const TIMELINE_LEFT = 150;

function hatch(color, background) {
  const tile = document.createElement("canvas");
  tile.width = tile.height = 8;
  const t = tile.getContext("2d");
  t.fillStyle = background; t.fillRect(0, 0, 8, 8);
  t.strokeStyle = color; t.lineWidth = 2;
  t.beginPath(); t.moveTo(0, 8); t.lineTo(8, 0); t.moveTo(-2, 2); t.lineTo(2, -2); t.moveTo(6, 10); t.lineTo(10, 6); t.stroke();
  return tile;
}
const HATCH = { 1: hatch("#f0a030", "#3a2c12"), 2: hatch("#e0604e", "#3a1212") };

function activityColor(index) {
  return ACTIVITY_COLORS[index % ACTIVITY_COLORS.length];
}

function activityOf(ep, agent, action) {
  const table = ep.activities && ep.activities.of && ep.activities.of[agent];
  return table && table[action] !== undefined ? table[action] : 0;
}

// The legend: one swatch per activity, then the two marks; rebuilt once per episode.
function buildLegend(ep) {
  const legend = document.getElementById("timeline-legend");
  const names = (ep.activities && ep.activities.names) || [];
  const items = names.map((name, i) =>
    `<span class="key" data-activity="${name}"><i style="background:${activityColor(i)}"></i>${name.replace(/_/g, " ")}</span>`);
  items.push('<span class="key" data-mark="1"><i class="hatch-default"></i>safe default</span>');
  items.push('<span class="key" data-mark="2"><i class="hatch-lost"></i>lost / not joined</span>');
  legend.innerHTML = items.join("");
}

function drawTimeline(state) {
  const ep = window.phobosDashboard.episode, canvas = document.getElementById("timeline");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, rowH = Math.floor((canvas.height - 10) / ep.agents.length);
  const scale = (W - TIMELINE_LEFT - 10) / ep.horizon;
  ctx.clearRect(0, 0, W, canvas.height);
  ep.agents.forEach((agent, a) => {
    const y = 5 + a * rowH;
    ctx.fillStyle = "#9fb0cc"; ctx.fillText(agent, 6, y + rowH / 2 + 4);
    const segments = (state.timeline || {})[agent] || [];
    segments.forEach(([start, action, mark], k) => {
      const end = k + 1 < segments.length ? segments[k + 1][0] : state.step;
      const x = TIMELINE_LEFT + start * scale, w = Math.max(1, (end - start) * scale);
      ctx.fillStyle = mark ? ctx.createPattern(HATCH[mark], "repeat") : activityColor(activityOf(ep, agent, action));
      ctx.fillRect(x, y + 2, w, rowH - 4);
    });
  });
  ctx.strokeStyle = "#ffffff"; ctx.beginPath();
  ctx.moveTo(TIMELINE_LEFT + state.step * scale, 0); ctx.lineTo(TIMELINE_LEFT + state.step * scale, canvas.height); ctx.stroke();
}

// What the timeline shows at (agent row, step): null outside the drawn spans.
function timelineAt(row, step) {
  const dash = window.phobosDashboard, ep = dash.episode, state = dash.snapshot && dash.snapshot.state;
  if (!ep || !state || row < 0 || row >= ep.agents.length || step < 0 || step >= state.step) return null;
  const agent = ep.agents[row], segments = (state.timeline || {})[agent] || [];
  let span = null;
  for (const segment of segments) { if (segment[0] <= step) span = segment; else break; }
  if (!span) return null;
  const [, action, mark] = span;
  const activity = ((ep.activities || {}).names || [])[activityOf(ep, agent, action)] || "?";
  const name = ((ep.actions || {})[agent] || [])[action] ?? action;
  return { agent, step, activity, action: name, mark: MARKS[mark || 0] };
}

function timelineTooltip(event) {
  const dash = window.phobosDashboard, ep = dash.episode, canvas = document.getElementById("timeline");
  const tip = document.getElementById("tooltip");
  if (!ep) { tip.hidden = true; return; }
  const rect = canvas.getBoundingClientRect(), sx = canvas.width / rect.width, sy = canvas.height / rect.height;
  const x = (event.clientX - rect.left) * sx, y = (event.clientY - rect.top) * sy;
  const rowH = Math.floor((canvas.height - 10) / ep.agents.length);
  const step = Math.floor((x - TIMELINE_LEFT) / ((canvas.width - TIMELINE_LEFT - 10) / ep.horizon));
  const what = x >= TIMELINE_LEFT ? timelineAt(Math.floor((y - 5) / rowH), step) : null;
  if (!what) { tip.hidden = true; return; }
  tip.textContent = `${what.agent}, step ${what.step}: ${what.activity.replace(/_/g, " ")} (${what.action})` +
    (what.mark ? `, ${what.mark}` : "");
  tip.hidden = false;
  tip.style.left = `${event.pageX + 12}px`; tip.style.top = `${event.pageY + 12}px`;
}

document.getElementById("timeline").addEventListener("mousemove", timelineTooltip);
document.getElementById("timeline").addEventListener("mouseleave", () => { document.getElementById("tooltip").hidden = true; });

// ---------------------------------------------------------------- The sampling task's view
// Three panels on one canvas, all from the world's telemetry (the env's own sky tables):
// the sky over the landing site (Phobos's surface with the lander, the Sun and Earth at their
// elevation, the link to Earth and the messages on it, each labelled with its light time),
// the Sun's and Earth's elevation over the episode with the contact windows, and the site's
// grid (material, reach, what was imaged, analysed and sampled).
const MATERIAL_COLORS = ["#8a7a66", "#6e5f4d", "#4a4038"];
// A message's label is long: more places to try, further above and below its dot.
const FLIGHT_OFFSETS = [...OFFSETS, [8, -34], [-8, -34], [8, 40], [-8, 40], [8, -48], [-8, -48], [8, 54], [-8, 54]];
const SKY_H = 250, STRIP_TOP = 262, STRIP_H = 96, GRID_TOP = 378;
// Fixed craters of the drawn surface (x offset from the lander, depth below the limb, radius).
const CRATERS = [[-210, 18, 16], [-120, 30, 9], [-60, 14, 6], [70, 22, 11], [150, 12, 7], [220, 34, 14]];

function at(table, step) {
  return table && table.length ? table[Math.max(0, Math.min(step, table.length - 1))] : 0;
}

function fmtMinutes(seconds) {
  return seconds >= 90 ? `${(seconds / 60).toFixed(1)} min` : `${Math.round(seconds)} s`;
}

// The sky: the horizon is the limb of Phobos (a large arc), the lander stands on top of it;
// a body at elevation e sits on a dome of radius `dome` at angle e above the horizon, the Sun
// on the left and Earth on the right (azimuths are not drawn: elevation is what matters).
function skyPoint(cx, horizon, dome, elevationDeg, side) {
  const e = elevationDeg * Math.PI / 180;
  return [cx + side * dome * Math.cos(e), horizon - dome * Math.sin(e)];
}

function drawSky(ctx, board, ep, state, W) {
  const step = state.step, sun = at(ep.sun_elevation_deg, step), earth = at(ep.earth_elevation_deg, step);
  const contact = !!at(ep.contact, Math.min(step, ep.horizon - 1)), cx = W / 2, horizon = SKY_H - 46;
  const day = Math.max(0, Math.min(1, (sun + 6) / 20));
  const sky = ctx.createLinearGradient(0, 0, 0, horizon);
  sky.addColorStop(0, `rgb(${8 + 20 * day},${10 + 30 * day},${24 + 60 * day})`);
  sky.addColorStop(1, `rgb(${20 + 60 * day},${18 + 50 * day},${30 + 50 * day})`);
  ctx.fillStyle = sky; ctx.fillRect(0, 0, W, SKY_H);
  const dome = Math.min(W / 2 - 50, horizon - 24);
  // The Sun and Earth (drawn first: the surface hides them when they are below the horizon).
  const sunAt = skyPoint(cx, horizon, dome, sun, -1), earthAt = skyPoint(cx, horizon, dome, earth, 1);
  ctx.fillStyle = "#ffd75e"; ctx.beginPath(); ctx.arc(sunAt[0], sunAt[1], 11, 0, 2 * Math.PI); ctx.fill();
  ctx.fillStyle = "#4f8fe0"; ctx.beginPath(); ctx.arc(earthAt[0], earthAt[1], 8, 0, 2 * Math.PI); ctx.fill();
  // Phobos's surface: the limb of a large circle, grey-brown regolith, a few craters.
  const R = 2500;  // flat enough that a body just below the horizon is hidden by the ground
  ctx.save(); ctx.beginPath(); ctx.rect(0, 0, W, SKY_H); ctx.clip();
  ctx.fillStyle = "#7a6a58"; ctx.beginPath(); ctx.arc(cx, horizon + R, R, 0, 2 * Math.PI); ctx.fill();
  ctx.fillStyle = "#5f5244";
  for (const [dx, depth, r] of CRATERS) {
    const y = horizon + R - Math.sqrt(R * R - dx * dx) + depth;
    ctx.beginPath(); ctx.ellipse(cx + dx, y, r, r / 3, 0, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.restore();
  // The lander: body, legs, solar panels, dish towards Earth.
  const ly = horizon - 2;
  ctx.strokeStyle = "#c8ccd4"; ctx.lineWidth = 2; ctx.beginPath();
  ctx.moveTo(cx - 14, ly); ctx.lineTo(cx - 8, ly - 12); ctx.moveTo(cx + 14, ly); ctx.lineTo(cx + 8, ly - 12); ctx.stroke();
  ctx.fillStyle = "#e0604e"; ctx.fillRect(cx - 10, ly - 24, 20, 13);
  ctx.fillStyle = "#3a5f9a"; ctx.fillRect(cx - 34, ly - 22, 22, 8); ctx.fillRect(cx + 12, ly - 22, 22, 8);
  const dish = [cx + 4, ly - 30];
  ctx.fillStyle = "#dde3ee"; ctx.beginPath(); ctx.arc(dish[0], dish[1], 4, 0, 2 * Math.PI); ctx.fill();
  ctx.lineWidth = 1;
  blockRegion(board, cx - 36, ly - 36, 72, 38);
  blockRegion(board, sunAt[0] - 12, sunAt[1] - 12, 24, 24);
  blockRegion(board, earthAt[0] - 9, earthAt[1] - 9, 18, 18);
  placeLabel(board, "Phobos-Grunt", cx, ly + 16, "lander", "#dde3ee", [[-34, 0], [8, 0]]);
  placeLabel(board, `Sun ${sun.toFixed(0)}°${sun < 0 ? " (night)" : ""}`, sunAt[0], Math.min(sunAt[1], horizon - 4), "sun", "#ffd75e");
  placeLabel(board, `Earth ${earth.toFixed(0)}°`, earthAt[0], Math.min(earthAt[1], horizon - 4), "earth", "#8fb8f0");
  // The link to Earth, and the messages on it (data up from the lander, advice down).
  const light = at(ep.light_time_s, Math.min(step, ep.horizon - 1));
  ctx.strokeStyle = contact ? "#4fb86bcc" : "#44506688"; ctx.setLineDash(contact ? [] : [4, 4]);
  ctx.beginPath(); ctx.moveTo(dish[0], dish[1]); ctx.lineTo(earthAt[0], earthAt[1]); ctx.stroke(); ctx.setLineDash([]);
  let drawn = 0;
  for (const [sender, receiver, depart, arrival] of state.flights || []) {
    if (arrival <= state.sim_time_s || depart > state.sim_time_s) continue;
    const up = sender === "phobos_grunt", f = Math.max(0, Math.min(1, (state.sim_time_s - depart) / (arrival - depart)));
    const a = up ? dish : earthAt, b = up ? earthAt : dish;
    const x = a[0] + (b[0] - a[0]) * f, y = a[1] + (b[1] - a[1]) * f;
    ctx.fillStyle = up ? "#ffe680" : "#7fe0a0"; ctx.beginPath(); ctx.arc(x, y, 4, 0, 2 * Math.PI); ctx.fill();
    const text = `${up ? "data to Earth" : "advice to lander"}, light time ${fmtMinutes(arrival - depart)}`;
    if (placeLabel(board, text, x, y, "flight", up ? "#ffe680" : "#7fe0a0", FLIGHT_OFFSETS)) noteFlightLabel(text);
    drawn += 1;
  }
  // What the link is doing now.
  const sees = at(ep.station_sees_mars, Math.min(step, ep.horizon - 1)) || [];
  const via = (ep.stations || []).filter((s, i) => sees[i]).map((s) => s.replace(/_/g, " "));
  let line = contact ? `in contact via ${via.join(", ") || "a station"}; one-way light time ${fmtMinutes(light)}`
    : "no contact with Earth";
  if (!contact) {
    let next = -1;
    for (let t = step; t < ep.horizon; t++) if (at(ep.contact, t)) { next = t; break; }
    line += next >= 0 ? `; next window in ${fmtTime((next - step) * ep.step_seconds)}` : "; none left this episode";
  }
  ctx.fillStyle = contact ? "#4fb86b" : "#e0a04e";
  ctx.fillText(line, 10, SKY_H - 10);
  return drawn;
}

// Elevations over the episode: Sun (yellow) and Earth (blue), contact windows shaded green.
function drawStrip(ctx, ep, state, W) {
  const left = 44, width = W - left - 10, top = STRIP_TOP, h = STRIP_H, T = ep.horizon;
  const x = (t) => left + (t / T) * width, y = (e) => top + h / 2 - (e / 90) * (h / 2);
  ctx.fillStyle = "#0b1220"; ctx.fillRect(left, top, width, h);
  ctx.fillStyle = "#4fb86b33";
  (ep.contact || []).forEach((c, t) => { if (c) ctx.fillRect(x(t), top, width / T + 0.5, h); });
  ctx.strokeStyle = "#33405a"; ctx.beginPath(); ctx.moveTo(left, y(0)); ctx.lineTo(left + width, y(0)); ctx.stroke();
  for (const [table, color] of [[ep.sun_elevation_deg, "#ffd75e"], [ep.earth_elevation_deg, "#4f8fe0"]]) {
    ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
    (table || []).forEach((e, t) => { if (t === 0) ctx.moveTo(x(t), y(e)); else ctx.lineTo(x(t), y(e)); });
    ctx.stroke();
  }
  ctx.lineWidth = 1; ctx.strokeStyle = "#ffffff";
  ctx.beginPath(); ctx.moveTo(x(state.step), top); ctx.lineTo(x(state.step), top + h); ctx.stroke();
  ctx.fillStyle = "#9fb0cc";
  ctx.fillText("+90°", 6, top + 10); ctx.fillText("0°", 20, y(0) + 4); ctx.fillText("-90°", 8, top + h);
  ctx.fillStyle = "#ffd75e"; ctx.fillText("Sun", left + 6, top + 12);
  ctx.fillStyle = "#4f8fe0"; ctx.fillText("Earth", left + 36, top + 12);
  ctx.fillStyle = "#4fb86b"; ctx.fillText("contact windows", left + 78, top + 12);
  ctx.fillStyle = "#9fb0cc"; ctx.fillText("elevation over the site, this episode", left + 184, top + 12);
}

function drawGrid(ctx, ep, state, W, H) {
  const cell = Math.floor(Math.min(W - 20, H - GRID_TOP - 10) / Math.max(ep.rows, ep.cols));
  const x0 = Math.floor((W - cell * ep.cols) / 2);
  const imaged = new Set(state.imaged || []), analysed = new Set(state.analysed || []);
  const sampled = new Set(state.sampled || []);
  for (let r = 0; r < ep.rows; r++) {
    for (let c = 0; c < ep.cols; c++) {
      const i = r * ep.cols + c, x = x0 + c * cell, y = GRID_TOP + r * cell;
      ctx.fillStyle = MATERIAL_COLORS[ep.material[i]] || "#333";
      ctx.fillRect(x, y, cell - 2, cell - 2);
      if (imaged.has(i)) { ctx.fillStyle = "#4f8fe055"; ctx.fillRect(x, y, cell - 2, cell - 2); }
      if (ep.reachable[i]) { ctx.strokeStyle = "#dde3ee"; ctx.strokeRect(x + 1, y + 1, cell - 4, cell - 4); }
      if (analysed.has(i)) {
        ctx.fillStyle = "#ffe680";
        ctx.beginPath(); ctx.arc(x + cell / 2, y + cell / 2, cell / 8, 0, 2 * Math.PI); ctx.fill();
      }
      if (sampled.has(i)) {
        ctx.strokeStyle = "#e0604e"; ctx.lineWidth = 3; ctx.beginPath();
        ctx.moveTo(x + 6, y + 6); ctx.lineTo(x + cell - 8, y + cell - 8);
        ctx.moveTo(x + cell - 8, y + 6); ctx.lineTo(x + 6, y + cell - 8); ctx.stroke(); ctx.lineWidth = 1;
      }
    }
  }
}

function drawSite(state) {
  const dash = window.phobosDashboard, ep = dash.episode, canvas = document.getElementById("site");
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px system-ui, sans-serif";
  const board = labelBoard(canvas);
  const drawn = drawSky(ctx, board, ep, state, W);
  drawStrip(ctx, ep, state, W);
  drawGrid(ctx, ep, state, W, H);
  dash.flightsDrawn = drawn; dash.flightsSeen += drawn;
  document.getElementById("m-flight").textContent = drawn;
  dash.orbitsDrawn += 1;
  canvas.dataset.drawn = String(dash.orbitsDrawn);
}

// ---------------------------------------------------------------- The page
const BODY_COLORS = { phobos: "#b39b7d", phobos_grunt: "#e0604e", yinghuo1: "#50c8c8" };
const dash = {
  orbitsDrawn: 0, updates: 0, step: -1, episode: null, snapshot: null,
  labels: {}, flightsDrawn: 0, flightsSeen: 0, flightLabels: [], waiting: null,
};
window.phobosDashboard = dash;

const $ = (id) => document.getElementById(id);

function fmtTime(seconds) {
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
  return `${h}h${String(m).padStart(2, "0")}`;
}

async function loadEpisode() {
  const response = await fetch("/api/episode");
  const episode = await response.json();
  if (episode && episode.kind) {
    dash.episode = episode;
    $("env").textContent = episode.env;
    $("orbits").hidden = episode.kind !== "orbit";
    $("site").hidden = episode.kind !== "site";
    $("legend").textContent = episode.kind === "orbit"
      ? "Mars at the centre (radial distance on a square-root scale); tracks of Phobos, Phobos-Grunt (red) and Yinghuo-1 (cyan) this episode; " +
        "Earth's direction at the rim with its ground stations, labelled (lit while Mars is above their horizon), and their links to each spacecraft (green while open); " +
        "dots are intent messages in flight, one light time labelled per link."
      : "Top: the sky over the landing site on Phobos, with the lander, the Sun and Earth at their elevation, and the link to Earth " +
        "(solid while in contact) carrying the lander's data to Earth (yellow) and the science team's advice back (green), each labelled with its light time. " +
        "Middle: the Sun's and Earth's elevation this episode, contact windows shaded green. " +
        "Bottom: the site, material by shade (regolith light, rock dark), reachable cells outlined; imaged cells tinted blue, spectra as yellow dots, samples as red crosses.";
    buildLegend(episode);
  }
}

function radial(x, y, rmax, R) {
  const r = Math.hypot(x, y);
  if (r === 0) return [0, 0];
  const s = R * Math.sqrt(r / rmax) / r;
  return [x * s, y * s];
}

function drawOrbits(state) {
  const ep = dash.episode, canvas = $("orbits"), ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, cx = W / 2, cy = H / 2, R = W / 2 - 40;
  ctx.clearRect(0, 0, W, H);
  let rmax = 1;
  for (const track of ep.tracks) for (const [x, y] of track) rmax = Math.max(rmax, Math.hypot(x, y));
  rmax *= 1.05;
  const step = Math.min(state.step, ep.tracks[0].length - 1);
  // Mars.
  const [mr] = radial(1, 0, rmax, R);
  ctx.fillStyle = "#b5523b";
  ctx.beginPath(); ctx.arc(cx, cy, mr, 0, 2 * Math.PI); ctx.fill();
  // Orbit tracks and bodies.
  const where = {};
  ep.tracks.forEach((track, b) => {
    const name = ep.bodies[b];
    ctx.strokeStyle = BODY_COLORS[name] + "88"; ctx.lineWidth = 1;
    ctx.beginPath();
    track.forEach(([x, y], i) => {
      const [px, py] = radial(x, -y, rmax, R);
      if (i === 0) ctx.moveTo(cx + px, cy + py); else ctx.lineTo(cx + px, cy + py);
    });
    ctx.stroke();
    const [x, y] = track[step];
    const [px, py] = radial(x, -y, rmax, R);
    where[name] = [cx + px, cy + py];
    ctx.fillStyle = BODY_COLORS[name];
    ctx.beginPath(); ctx.arc(cx + px, cy + py, name === "phobos" ? 5 : 6, 0, 2 * Math.PI); ctx.fill();
  });
  const board = labelBoard(canvas);
  for (const name of ep.bodies) blockRegion(board, where[name][0] - 6, where[name][1] - 6, 12, 12);
  // Earth's direction and the stations.
  const [ex, ey] = ep.earth[Math.min(step, ep.earth.length - 1)];
  const norm = Math.hypot(ex, ey) || 1;
  const ux = ex / norm, uy = -ey / norm;
  const earth = [cx + ux * (R + 22), cy + uy * (R + 22)];
  ctx.fillStyle = "#4f8fe0";
  ctx.beginPath(); ctx.arc(earth[0], earth[1], 9, 0, 2 * Math.PI); ctx.fill();
  blockRegion(board, earth[0] - 10, earth[1] - 10, 20, 20);
  const sees = ep.station_sees_mars[Math.min(step, ep.station_sees_mars.length - 1)] || [];
  ep.stations.forEach((station, s) => {
    const off = (s - (ep.stations.length - 1) / 2) * 26;
    where[station] = [earth[0] - uy * off - ux * 26, earth[1] + ux * off - uy * 26];
    ctx.fillStyle = sees[s] ? "#ffe680" : "#444c5c";
    ctx.fillRect(where[station][0] - 4, where[station][1] - 4, 8, 8);
    blockRegion(board, where[station][0] - 5, where[station][1] - 5, 10, 10);
  });
  // Labels, most important first: a later one never covers an earlier one.
  placeLabel(board, "Earth", earth[0] + 4, earth[1] + 4, "earth", "#dde3ee");
  const outward = ux >= 0 ? 1 : -1;  // station labels go away from Mars, where there is room
  const stationOffsets = [[8 * outward, 4], [8 * outward, -8], [8 * outward, 16], [-8 * outward, 4], [8 * outward, 28], [8 * outward, -20]];
  ep.stations.forEach((station, s) => {
    placeLabel(board, station.replace(/^ground_/, "").replace(/_/g, " "), where[station][0], where[station][1],
      "station", sees[s] ? "#ffe680" : "#9fb0cc", stationOffsets);
  });
  for (const name of ep.bodies) {
    placeLabel(board, name.replace(/_/g, "-"), where[name][0], where[name][1], "body", BODY_COLORS[name]);
  }
  const craft = ["phobos_grunt", "yinghuo1"];
  ctx.lineWidth = 1.5;
  for (const [s, c] of ep.links[Math.min(step, ep.links.length - 1)] || []) {
    const a = where[ep.stations[s]], b = where[craft[c]];
    ctx.strokeStyle = "#4fb86bcc";
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  }
  // Messages in flight (state.flights: [sender, receiver, departure s, arrival s] in sim time).
  // Every one is a dot; one light time is labelled per link (sender and receiver, either way),
  // where a free spot is found: a dozen identical "1166 s" labels on one line say nothing more.
  let inFlight = 0;
  const labelled = new Set();
  for (const [sender, receiver, depart, arrival] of state.flights || []) {
    const a = where[sender], b = where[receiver];
    if (!a || !b || arrival <= state.sim_time_s || depart > state.sim_time_s) continue;
    inFlight += 1;
    const f = Math.max(0, Math.min(1, (state.sim_time_s - depart) / (arrival - depart)));
    const x = a[0] + (b[0] - a[0]) * f, y = a[1] + (b[1] - a[1]) * f;
    ctx.fillStyle = "#ffffff";
    ctx.beginPath(); ctx.arc(x, y, 3, 0, 2 * Math.PI); ctx.fill();
    blockRegion(board, x - 3, y - 3, 6, 6);
    const link = [sender, receiver].sort().join(" ");
    const text = `${Math.round(arrival - depart)} s`;
    if (!labelled.has(link) && placeLabel(board, text, x, y, "light-time", "#9fb0cc")) {
      labelled.add(link);
      noteFlightLabel(text);
    }
  }
  dash.flightsDrawn = inFlight; dash.flightsSeen += inFlight;
  $("m-flight").textContent = inFlight;
  dash.orbitsDrawn += 1;
  canvas.dataset.drawn = String(dash.orbitsDrawn);
}

function bar(value, cls) {
  if (value === undefined || value === null) return "";
  return `<span class="bar ${cls}"><i style="width:${Math.round(100 * value)}%"></i></span> ${Math.round(100 * value)}%`;
}

function render(snapshot) {
  const state = snapshot.state;
  dash.snapshot = snapshot; dash.updates += 1;
  if (!state || state.tick === undefined) return;
  showWaiting(state.waiting);
  const key = JSON.stringify(snapshot.episode_key);
  if (!dash.episode || JSON.stringify([dash.episode.episode, dash.episode.seed]) !== key || dash.episode.episode !== state.episode) {
    if (!dash.loading) { dash.loading = true; loadEpisode().finally(() => { dash.loading = false; }); }
  }
  dash.step = state.tick;
  $("step").textContent = state.tick;
  $("episode").textContent = `${state.episode} (seed ${state.seed}), step ${state.step}`;
  $("simtime").textContent = fmtTime(state.sim_time_s);
  $("rate").textContent = state.rate;
  $("return").textContent = state.team_return;
  $("paused").textContent = state.paused ? "PAUSED" : (state.speed > 0 ? `target ${state.speed} steps/s` : "throttle off");
  if (document.activeElement !== $("speed")) {
    const option = [...$("speed").options].find((o) => Number(o.value) === state.speed);
    if (option) $("speed").value = option.value;
  }
  const m = state.messages || {};
  for (const k of ["sent", "delivered", "held", "dropped", "unaccounted"]) {
    $("m-" + k).textContent = m[k] ?? 0;
  }
  $("m-unaccounted").className = m.unaccounted ? "bad" : "";
  // Agent-sent messages through the DTN relay: its own lost / duplicated counts, when given.
  $("m-relay").hidden = !("duplicated" in m);
  $("m-duplicated").textContent = m.duplicated ?? 0;
  $("m-duplicated").className = m.duplicated ? "bad" : "";
  $("m-refused").textContent = state.refused ?? 0;
  const names = (dash.episode && dash.episode.actions) || {};
  const rows = [];
  const supervisor = snapshot.supervisor || {};
  for (const [agent, record] of Object.entries(state.agents || {})) {
    const action = (state.activities || {})[agent];
    const activity = action === undefined ? "-" : ((names[agent] || [])[action] || action);
    const craft = (state.craft || {})[agent] || {};
    const defaulted = (state.defaulted || []).includes(agent);
    const restarts = Math.max(record.restarts, (supervisor[agent] || {}).restarts || 0);
    const status = restarts && record.status === "alive" ? "alive (restarted)" : record.status;
    rows.push(`<tr><td>${agent}</td><td class="${record.status}">${status}</td>` +
      `<td class="${defaulted ? "defaulted" : ""}">${activity}${defaulted ? " (safe default)" : ""}</td>` +
      `<td>${bar(craft.battery, "")}</td><td>${bar(craft.storage, "storage")}</td>` +
      `<td>${record.actions}</td><td>${record.defaults}</td><td>${restarts}</td></tr>`);
  }
  $("agents").querySelector("tbody").innerHTML = rows.join("");
  $("events").innerHTML = (snapshot.events || []).slice().reverse()
    .map((e) => `<li>tick ${e.tick}: ${e.agent} ${e.event}${e.detail ? " - " + e.detail : ""}</li>`).join("");
  if (dash.episode && dash.episode.episode === state.episode) {
    if (dash.episode.kind === "orbit") drawOrbits(state);
    if (dash.episode.kind === "site") drawSite(state);
    drawTimeline(state);
  }
}

// Before the first step the world publishes who has joined (state.waiting): say so, and who
// is missing, instead of empty panels labelled "live".
function showWaiting(waiting) {
  dash.waiting = waiting || null;
  const banner = $("waiting"), connection = $("connection");
  if (waiting) {
    const missing = waiting.missing.join(", ");
    banner.textContent = `Waiting for agents ${waiting.joined}/${waiting.expected}: ` +
      `${missing} still loading or connecting. The world starts when every agent has joined ` +
      `(${Math.round(waiting.left_s)} s left, then the missing ones fly safe defaults).`;
    connection.textContent = `waiting for agents ${waiting.joined}/${waiting.expected}`;
    connection.className = "waiting";
    for (const id of ["orbits", "site"]) {
      const canvas = $(id), ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.fillStyle = "#9fb0cc"; ctx.font = "16px system-ui, sans-serif";
      ctx.fillText(`waiting for agents ${waiting.joined}/${waiting.expected}`, 20, 40);
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillText(`missing: ${missing}`, 20, 62);
    }
  } else if (connection.className === "waiting") {
    connection.textContent = "live"; connection.className = "good";
  }
  banner.hidden = !waiting;
}

async function control(command, value) {
  const response = await fetch("/api/control", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(value === undefined ? { command } : { command, value }),
  });
  return response.json();
}

$("pause").onclick = () => control("pause");
$("resume").onclick = () => control("resume");
$("speed").onchange = (e) => control("speed", Number(e.target.value));

function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => {
    if (dash.waiting) return;  // the next update says how many agents have joined
    $("connection").textContent = "live"; $("connection").className = "good";
  };
  source.onmessage = (event) => render(JSON.parse(event.data));
  source.onerror = () => { $("connection").textContent = "reconnecting"; $("connection").className = "bad"; };
}
loadEpisode().finally(connect);
