// The live floor: draws the snapshot /floor/events sends first, then applies each delta.
// No polling: every change arrives on the stream (one EventSource per tab).
"use strict";
(function () {
  const root = document.querySelector("[data-floor]");
  if (!root) return;
  const L = JSON.parse(root.dataset.labels);
  const csrf = root.dataset.csrf;
  const state = { calls: new Map(), agents: new Map(), campaigns: new Map(), queues: new Map(),
                  health: {}, skew: 0 };
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function pct(x) { return x === null || x === undefined ? L.none : (x * 100).toFixed(1) + " %"; }
  function num(x) { return x === null || x === undefined ? L.none : String(x); }
  function ago(since) {
    if (since === null || since === undefined) return L.none;
    const s = Math.max(0, Math.round(Date.now() / 1000 - state.skew - since));
    const m = Math.floor(s / 60), r = s % 60;
    return m >= 60 ? Math.floor(m / 60) + ":" + String(m % 60).padStart(2, "0") + ":" + String(r).padStart(2, "0")
                   : m + ":" + String(r).padStart(2, "0");
  }
  function word(key) { return L[key] || key; }
  function campaignName(id) {
    const c = state.campaigns.get(id);
    return c && c.name ? c.name : (id === null || id === undefined ? L.none : "#" + id);
  }
  function pauseForm(action, field, value, label) {
    const form = el("form");
    form.method = "post"; form.action = action;
    const token = el("input"); token.type = "hidden"; token.name = "csrf_token"; token.value = csrf;
    const what = el("input"); what.type = "hidden"; what.name = field; what.value = value;
    const button = el("button", L.pause); button.type = "submit";
    button.setAttribute("aria-label", label);
    form.append(token, what, button);
    return form;
  }
  function fill(tbody, rows, empty, columns) {
    const body = $(tbody);
    body.replaceChildren();
    if (!rows.length) {
      const tr = el("tr"); const td = el("td", empty, "hint"); td.colSpan = columns;
      tr.append(td); body.append(tr); return;
    }
    for (const cells of rows) {
      const tr = el("tr");
      for (const cell of cells) {
        const td = el("td");
        if (cell instanceof Node) td.append(cell); else td.textContent = cell;
        tr.append(td);
      }
      body.append(tr);
    }
  }
  function drawCampaigns() {
    const rows = [...state.campaigns.values()].filter((c) => c.name)
      .sort((a, b) => a.name.localeCompare(b.name)).map((c) => [
        c.name, el("span", word(c.status), "state-" + c.status), num(c.dial_level),
        num(c.calls_out) + " / " + num(c.target), pct(c.answer_rate), num(c.hung_up_1h),
        pct(c.abandon_24h),
        pct(c.abandon_30d), c.limit_pct === null || c.limit_pct === undefined ? L.none : c.limit_pct + " %",
        num(c.reserve),
        c.status === "running" ? pauseForm("/floor/pause-campaign", "campaign", c.name, L.pause + " " + c.name) : "",
      ]);
    fill("floor-campaigns", rows, L.no_campaigns, 11);
  }
  function drawAgents() {
    const rows = [...state.agents.values()].sort((a, b) => a.name.localeCompare(b.name)).map((a) => {
      const t = el("span", ago(a.since), "ticking"); t.dataset.since = a.since;
      const shown = el("strong", word(a.state), "state-" + a.state);
      const why = a.state === "paused" && a.pause_code ? L["pause_" + a.pause_code] || a.pause_code : "";
      const stateCell = why ? el("span") : shown;
      if (why) stateCell.append(shown, " · " + why);  // Paused · browser phone lost
      return [a.name, campaignName(a.campaign_id), stateCell, t,
        a.state === "free" || a.state === "wrapping" ? pauseForm("/floor/pause-agent", "agent", a.name, L.pause + " " + a.name) : ""];
    });
    fill("floor-agents", rows, L.no_agents, 5);
  }
  function drawCalls() {
    const calls = [...state.calls.values()].sort((a, b) => a.since - b.since);
    const rows = calls.map((c) => {
      const t = el("span", ago(c.since), "ticking"); t.dataset.since = c.since;
      return [c.number || L.none, campaignName(c.campaign_id), el("span", word(c.state), "state-" + c.state), t, c.agent || L.none];
    });
    fill("floor-calls", rows, L.no_calls, 5);
  }
  function drawQueues() {
    const rows = [...state.queues.values()].sort((a, b) => a.name.localeCompare(b.name)).map((q) => {
      const t = el("span", q.oldest === null ? L.none : ago(q.oldest), "ticking");
      if (q.oldest !== null) t.dataset.since = q.oldest;
      // The share answered within the queue's own target, and the target beside it.
      const level = el("span", pct(q.service_level));
      level.append(el("small", " ≤ " + q.service_level_s + " s", "hint"));
      return [q.name, String(q.waiting), t, level, String(q.abandoned)];
    });
    fill("floor-queues", rows, L.no_queues, 5);
  }
  function drawHealth() {
    const box = $("floor-alerts");
    box.replaceChildren();
    for (const [name, h] of Object.entries(state.health)) {
      if (h.status === "ok") continue;
      const p = el("p", L.link_down.replace("{name}", name).replace("{detail}", h.detail || word(h.status)),
                   h.status === "down" ? "error" : "warn");
      p.dataset.component = name;
      box.append(p);
    }
  }
  function drawAll() { drawCampaigns(); drawAgents(); drawCalls(); drawQueues(); drawHealth(); }

  const handlers = {
    snapshot(d) {
      state.calls = new Map(d.calls.map((c) => [c.id, c]));
      state.agents = new Map(d.agents.map((a) => [a.name, a]));
      state.campaigns = new Map(d.campaigns.map((c) => [c.id, c]));
      state.queues = new Map(d.queues.map((q) => [q.name, q]));
      state.health = d.health;
      drawAll();
    },
    call(d) {
      if (d.state === "ended") state.calls.delete(d.id); else state.calls.set(d.id, d);
      drawCalls();
    },
    agent(d) {
      if (d.state === "logged_out") state.agents.delete(d.name); else state.agents.set(d.name, d);
      drawAgents();
    },
    campaign(d) { state.campaigns.set(d.id, d); drawCampaigns(); drawAgents(); drawCalls(); },
    queue(d) { state.queues.set(d.name, d); drawQueues(); },
    health(d) { state.health = d.components; drawHealth(); },
  };

  let received = 0;
  const source = new EventSource("/floor/events");
  for (const [kind, handle] of Object.entries(handlers)) {
    source.addEventListener(kind, (e) => {
      const d = JSON.parse(e.data);
      state.skew = Date.now() / 1000 - d.t;  // the server's clock as this tab sees it
      handle(d);
      received += 1;
      root.dataset.received = String(received);
    });
  }
  source.addEventListener("open", () => { $("floor-stream").textContent = ""; });
  source.addEventListener("error", () => { $("floor-stream").textContent = L.stream_lost; });
  setInterval(() => {
    for (const t of root.querySelectorAll(".ticking[data-since]")) t.textContent = ago(Number(t.dataset.since));
  }, 1000);
})();
