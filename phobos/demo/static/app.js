// Phobos live dashboard: Server-Sent Events in, canvas out, controls posted back.
// Everything is drawn here with the canvas API; nothing is loaded from another host.
"use strict";

const COLORS = ["#55606f", "#4fb86b", "#4f8fe0", "#e0604e", "#d6a34a", "#b070d0", "#50c8c8"];
const BODY_COLORS = { phobos: "#b39b7d", phobos_grunt: "#e0604e", yinghuo1: "#50c8c8" };
const MATERIAL_COLORS = ["#8a7a66", "#6e5f4d", "#4a4038"];
const dash = { orbitsDrawn: 0, updates: 0, step: -1, episode: null, snapshot: null };
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
        "Earth's direction at the rim with its stations (lit while Mars is above their horizon) and their links to each spacecraft (green while open); " +
        "dots are intent messages in flight, labelled with their light time."
      : "The landing site: material by shade (regolith light, rock dark), reachable cells outlined; imaged cells tinted blue, spectra as yellow dots, samples as red crosses.";
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
    ctx.fillText(name, cx + px + 8, cy + py - 6);
  });
  // Earth's direction and the stations.
  const [ex, ey] = ep.earth[Math.min(step, ep.earth.length - 1)];
  const norm = Math.hypot(ex, ey) || 1;
  const ux = ex / norm, uy = -ey / norm;
  const earth = [cx + ux * (R + 22), cy + uy * (R + 22)];
  ctx.fillStyle = "#4f8fe0";
  ctx.beginPath(); ctx.arc(earth[0], earth[1], 9, 0, 2 * Math.PI); ctx.fill();
  ctx.fillStyle = "#dde3ee"; ctx.fillText("Earth", earth[0] + 12, earth[1] + 4);
  const sees = ep.station_sees_mars[Math.min(step, ep.station_sees_mars.length - 1)] || [];
  ep.stations.forEach((station, s) => {
    const off = (s - (ep.stations.length - 1) / 2) * 26;
    where[station] = [earth[0] - uy * off - ux * 26, earth[1] + ux * off - uy * 26];
    ctx.fillStyle = sees[s] ? "#ffe680" : "#444c5c";
    ctx.fillRect(where[station][0] - 4, where[station][1] - 4, 8, 8);
  });
  const craft = ["phobos_grunt", "yinghuo1"];
  ctx.lineWidth = 1.5;
  for (const [s, c] of ep.links[Math.min(step, ep.links.length - 1)] || []) {
    const a = where[ep.stations[s]], b = where[craft[c]];
    ctx.strokeStyle = "#4fb86bcc";
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  }
  // Messages in flight.
  let inFlight = 0;
  for (const [sender, receiver, depart, arrival] of state.flights || []) {
    const a = where[sender], b = where[receiver];
    if (!a || !b || arrival <= state.sim_time_s || depart > state.sim_time_s) continue;
    inFlight += 1;
    const f = Math.max(0, Math.min(1, (state.sim_time_s - depart) / (arrival - depart)));
    const x = a[0] + (b[0] - a[0]) * f, y = a[1] + (b[1] - a[1]) * f;
    ctx.fillStyle = "#ffffff";
    ctx.beginPath(); ctx.arc(x, y, 3, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = "#9fb0cc";
    ctx.fillText(`${Math.round(arrival - depart)} s`, x + 5, y + 12);
  }
  $("m-flight").textContent = inFlight;
  dash.orbitsDrawn += 1;
  canvas.dataset.drawn = String(dash.orbitsDrawn);
}

function drawSite(state) {
  const ep = dash.episode, canvas = $("site"), ctx = canvas.getContext("2d");
  const W = canvas.width, cell = Math.floor((W - 20) / Math.max(ep.rows, ep.cols));
  ctx.clearRect(0, 0, W, canvas.height);
  const imaged = new Set(state.imaged || []), analysed = new Set(state.analysed || []);
  const sampled = new Set(state.sampled || []);
  for (let r = 0; r < ep.rows; r++) {
    for (let c = 0; c < ep.cols; c++) {
      const i = r * ep.cols + c, x = 10 + c * cell, y = 10 + r * cell;
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
  ctx.fillStyle = state.contact ? "#4fb86b" : "#e0604e";
  ctx.fillText(state.contact ? "Earth contact" : "no contact", 12, canvas.height - 8);
  dash.orbitsDrawn += 1;
  canvas.dataset.drawn = String(dash.orbitsDrawn);
}

function drawTimeline(state) {
  const ep = dash.episode, canvas = $("timeline"), ctx = canvas.getContext("2d");
  const W = canvas.width, rowH = Math.floor((canvas.height - 10) / ep.agents.length);
  const left = 150, scale = (W - left - 10) / ep.horizon;
  ctx.clearRect(0, 0, W, canvas.height);
  ep.agents.forEach((agent, a) => {
    const y = 5 + a * rowH;
    ctx.fillStyle = "#9fb0cc"; ctx.fillText(agent, 6, y + rowH / 2 + 4);
    const segments = (state.timeline || {})[agent] || [];
    segments.forEach(([start, action], k) => {
      const end = k + 1 < segments.length ? segments[k + 1][0] : state.step;
      ctx.fillStyle = COLORS[action % COLORS.length];
      ctx.fillRect(left + start * scale, y + 2, Math.max(1, (end - start) * scale), rowH - 4);
    });
  });
  ctx.strokeStyle = "#ffffff"; ctx.beginPath();
  ctx.moveTo(left + state.step * scale, 0); ctx.lineTo(left + state.step * scale, canvas.height); ctx.stroke();
}

function bar(value, cls) {
  if (value === undefined || value === null) return "";
  return `<span class="bar ${cls}"><i style="width:${Math.round(100 * value)}%"></i></span> ${Math.round(100 * value)}%`;
}

function render(snapshot) {
  const state = snapshot.state;
  dash.snapshot = snapshot; dash.updates += 1;
  if (!state || state.tick === undefined) return;
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
  source.onopen = () => { $("connection").textContent = "live"; $("connection").className = "good"; };
  source.onmessage = (event) => render(JSON.parse(event.data));
  source.onerror = () => { $("connection").textContent = "reconnecting"; $("connection").className = "bad"; };
}
loadEpisode().finally(connect);
