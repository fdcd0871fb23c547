// Switchboard console: a chat playground that sends slash commands through
// the same handler as Slack and polls the channel's transcript, next to the
// runs table and the audit log. Plain JavaScript, no build step, nothing
// loaded from the network.
"use strict";

(function () {
  const OTHER = "__other__";
  const TRANSCRIPT_POLL_MS = 700;
  const TABLES_POLL_MS = 3000;

  const csrf = document.querySelector('meta[name="sb-csrf"]').content;
  const $ = (id) => document.getElementById(id);
  const el = {
    user: $("user"), userOther: $("user-other"),
    channel: $("channel"), channelOther: $("channel-other"),
    title: $("channel-title"), transcript: $("transcript"),
    composer: $("composer"), input: $("input"), send: $("send"),
    status: $("status"), help: $("help"),
    runs: $("runs"), runsEmpty: $("runs-empty"),
    audit: $("audit"), auditEmpty: $("audit-empty"), auditFilters: $("audit-filters"),
    sources: $("sources"),
  };

  const state = {
    channel: "",     // the channel whose transcript is shown
    lastID: 0,       // the newest transcript line shown
    generation: 0,   // bumps on channel change so a late poll is dropped
    history: [], historyAt: 0,
  };

  // --- talking to the server ---

  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const opts = { method, headers: { "X-Switchboard-CSRF": csrf }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw new APIError(0, "Switchboard is not answering; is it still running?");
    }
    if (resp.status === 401) {
      window.location.assign("/console/login");
      throw new APIError(401, "Log in again.");
    }
    let data = {};
    try { data = await resp.json(); } catch (e) { /* an empty or non-JSON answer */ }
    if (!resp.ok) throw new APIError(resp.status, data.error || ("The server answered " + resp.status + "."));
    return data;
  }

  function showStatus(text) {
    el.status.textContent = text || "";
    el.status.hidden = !text;
  }

  // --- pickers ---

  function picked(select, other) {
    return select.value === OTHER ? other.value.trim() : select.value;
  }
  const currentUser = () => picked(el.user, el.userOther);
  const currentChannel = () => picked(el.channel, el.channelOther);

  function syncOther(select, other) {
    other.hidden = select.value !== OTHER;
    if (!other.hidden && document.activeElement === select) other.focus();
  }

  // --- transcript ---

  // renderText turns the bits of Slack mrkdwn answers use (*bold*, `code`,
  // <url|label>, <@U123>, &amp;) into DOM nodes, never HTML strings.
  function renderText(parent, text) {
    const decode = (s) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
    const re = /`([^`]+)`|\*([^*\n]+)\*|<([^>|]+)(?:\|([^>]+))?>/g;
    let at = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > at) parent.appendChild(document.createTextNode(decode(text.slice(at, m.index))));
      if (m[1] !== undefined) {
        const code = document.createElement("code");
        code.textContent = decode(m[1]);
        parent.appendChild(code);
      } else if (m[2] !== undefined) {
        const b = document.createElement("strong");
        b.textContent = decode(m[2]);
        parent.appendChild(b);
      } else {
        const target = m[3], label = m[4];
        if (/^https?:\/\//.test(target)) {
          const a = document.createElement("a");
          a.href = target;
          a.rel = "noopener noreferrer";
          a.target = "_blank";
          a.textContent = decode(label || target);
          parent.appendChild(a);
        } else {
          // <@U123>, <#C123|name>, <!here>
          const sigil = target[0] === "@" || target[0] === "#" ? target[0] : "@";
          parent.appendChild(document.createTextNode(label ? sigil + decode(label) : decode(target.replace(/^!/, "@"))));
        }
      }
      at = re.lastIndex;
    }
    if (at < text.length) parent.appendChild(document.createTextNode(decode(text.slice(at))));
  }

  function formatTime(iso) {
    if (!iso) return "";
    const t = new Date(iso);
    if (isNaN(t)) return "";
    const now = new Date();
    const sameDay = t.toDateString() === now.toDateString();
    return sameDay ? t.toLocaleTimeString() : t.toLocaleString();
  }

  function span(cls, text) {
    const s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    return s;
  }

  function lineElement(line) {
    const li = document.createElement("li");
    li.className = "line";
    li.dataset.kind = line.kind;
    if (line.id) li.dataset.id = line.id;
    if (line.user_id) li.dataset.user = line.user_id;
    if (line.run_id) li.dataset.run = line.run_id;

    const time = document.createElement("time");
    time.textContent = formatTime(line.time);
    if (line.time) time.dateTime = line.time;
    li.appendChild(time);

    const text = span("text", "");
    switch (line.kind) {
      case "command":
        li.appendChild(span("who", line.user_id || "someone"));
        li.appendChild(span("sep", ": "));
        text.textContent = line.text;
        break;
      case "ack":
        li.appendChild(span("who bot", "Switchboard"));
        li.appendChild(span("note", "Only visible to you"));
        renderText(text, line.text);
        break;
      case "error":
        li.appendChild(span("who", "Console"));
        li.appendChild(span("sep", ": "));
        text.textContent = line.text;
        break;
      default: // answer
        li.appendChild(span("who bot", "Switchboard"));
        li.appendChild(span("badge", "APP"));
        renderText(text, line.text);
    }
    li.appendChild(text);
    if (line.approval_id) li.appendChild(approvalButtons(line.approval_id));
    return li;
  }

  // approvalButtons answers an approval request as the selected user, as the
  // Approve and Deny buttons do in Slack.
  function approvalButtons(id) {
    const box = document.createElement("div");
    box.className = "approval";
    box.dataset.approval = id;
    const result = span("approval-result", "");
    for (const [label, approve] of [["Approve", true], ["Deny", false]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.className = approve ? "approve" : "deny";
      b.addEventListener("click", async () => {
        try {
          const data = await api("POST", "/console/api/approvals/" + encodeURIComponent(id), { user: currentUser(), approve });
          result.textContent = data.text;
          if (data.state && data.state !== "pending") {
            for (const btn of box.querySelectorAll("button")) btn.disabled = true;
          }
        } catch (e) {
          result.textContent = e.message;
        }
      });
      box.appendChild(b);
    }
    box.appendChild(result);
    return box;
  }

  // Acks are ephemeral: only the user who typed the command sees them.
  function applyVisibility() {
    const user = currentUser();
    for (const li of el.transcript.querySelectorAll('.line[data-kind="ack"]')) {
      li.hidden = li.dataset.user !== user;
    }
  }

  function addLines(lines) {
    if (!lines.length) return;
    const nearBottom = el.transcript.scrollHeight - el.transcript.scrollTop - el.transcript.clientHeight < 40;
    for (const line of lines) {
      if (line.id && line.id <= state.lastID) continue;
      el.transcript.appendChild(lineElement(line));
      if (line.id) state.lastID = line.id;
    }
    applyVisibility();
    if (nearBottom) el.transcript.scrollTop = el.transcript.scrollHeight;
  }

  function addLocalError(text) {
    el.transcript.appendChild(lineElement({ kind: "error", text, time: new Date().toISOString() }));
    el.transcript.scrollTop = el.transcript.scrollHeight;
  }

  function switchChannel() {
    const channel = currentChannel();
    if (channel === state.channel) return;
    state.channel = channel;
    state.lastID = 0;
    state.generation++;
    el.transcript.replaceChildren();
    el.title.textContent = channel ? "#" + channel : "Pick a channel";
    pollTranscript();
  }

  let polling = false;
  async function pollTranscript() {
    if (polling || !state.channel) return;
    polling = true;
    const generation = state.generation;
    try {
      const q = new URLSearchParams({ channel: state.channel, after: String(state.lastID) });
      const data = await api("GET", "/console/api/transcript?" + q);
      if (generation === state.generation) addLines(data.lines || []);
      showStatus("");
    } catch (e) {
      showStatus(e.message);
    } finally {
      polling = false;
      if (generation !== state.generation) pollTranscript();
    }
  }

  async function send() {
    const text = el.input.value.trim();
    if (!text) return;
    const user = currentUser(), channel = currentChannel();
    if (!user) { addLocalError("Pick a user to send the command as."); return; }
    if (!channel) { addLocalError("Pick a channel to send the command in."); return; }
    switchChannel();
    state.history.push(text);
    state.historyAt = state.history.length;
    el.input.value = "";
    el.send.disabled = true;
    try {
      await api("POST", "/console/api/command", { user, channel, text });
    } catch (e) {
      addLocalError(e.message);
    } finally {
      el.send.disabled = false;
      el.input.focus();
    }
    pollTranscript();
    refreshTables();
  }

  // --- runs and audit ---

  function cell(tr, text, cls, title) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    if (title) td.title = title;
    tr.appendChild(td);
    return td;
  }

  function fillTable(table, empty, rows, render) {
    const tbody = table.tBodies[0];
    const fresh = document.createElement("tbody");
    for (const row of rows) {
      const tr = document.createElement("tr");
      render(tr, row);
      fresh.appendChild(tr);
    }
    table.replaceChild(fresh, tbody);
    empty.hidden = rows.length > 0;
  }

  function renderRun(tr, run) {
    const req = run.request || {};
    cell(tr, (run.id || "").slice(0, 12), "mono", run.id);
    cell(tr, run.workflow);
    const st = cell(tr, run.state, "state");
    st.dataset.state = run.state;
    cell(tr, req.user_id);
    cell(tr, req.channel_id);
    cell(tr, formatTime(run.created_at), "time", run.created_at);
    if (run.error) cell(tr, run.error, "failed");
    else cell(tr, run.result);
  }

  // The audit log, newest first, narrowed by the filters above it. The run
  // sits under the time and the channel under the actor, so Detail keeps
  // room to be read; a run id narrows the log to that run.
  function renderAudit(tr, ev) {
    tr.dataset.kind = ev.kind || "";
    tr.dataset.actor = ev.actor || "";
    tr.dataset.outcome = ev.outcome || "";
    tr.dataset.run = ev.run_id || "";
    const when = cell(tr, formatTime(ev.time), "time", ev.time);
    if (ev.run_id) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "link run mono";
      b.textContent = ev.run_id.slice(0, 12);
      b.title = "Only this run: " + ev.run_id;
      b.addEventListener("click", () => { el.auditFilters.elements.run.value = ev.run_id; refreshTables(); });
      when.appendChild(b);
    }
    cell(tr, ev.kind, "kind");
    const who = cell(tr, ev.actor, "id");
    if (ev.channel) who.appendChild(span("channel", "#" + ev.channel));
    keepIDsWhole(cell(tr, "", "subject"), ev.subject);
    const out = cell(tr, ev.outcome, "outcome");
    out.dataset.outcome = ev.outcome || "";
    keepIDsWhole(cell(tr, "", "detail"), ev.detail);
  }

  // keepIDsWhole writes text into node so that a line never breaks inside
  // an id such as i-0123456789abcdef0 or r-1a2369a2109 (at its hyphen).
  function keepIDsWhole(node, text) {
    for (const part of String(text || "").split(/(\s+)/)) {
      if (/[-_]/.test(part) && /\d/.test(part)) node.appendChild(span("nobr", part));
      else if (part) node.appendChild(document.createTextNode(part));
    }
  }

  function auditPath() {
    const q = new URLSearchParams({ since: "24h", limit: "200" });
    let filtered = false;
    for (const name of ["actor", "kind", "outcome", "run"]) {
      const v = el.auditFilters.elements[name].value.trim();
      if (v) { q.set(name, v); filtered = true; }
    }
    el.auditEmpty.textContent = filtered ? "Nothing in the last 24 hours matches these filters." : "Nothing in the audit log for the last 24 hours.";
    return "/console/api/audit?" + q;
  }

  // renderSources shows one line per trigger source (mailbox, queue): ok,
  // or failing since when, why, and when it is tried again.
  function renderSources(status) {
    const sources = status.sources || {};
    const names = Object.keys(sources).sort();
    el.sources.replaceChildren();
    el.sources.hidden = names.length === 0;
    if (!names.length) return;
    el.sources.dataset.status = status.status;
    el.sources.appendChild(span("label", "Trigger sources:"));
    for (const name of names) {
      const h = sources[name];
      const s = span("source", "");
      s.dataset.source = name;
      s.dataset.state = h.state;
      let text = name + " " + h.state;
      if (h.state === "failing") {
        text += " since " + formatTime(h.since) + ": " + (h.error || "");
        if (h.next_try) text += " (next try " + formatTime(h.next_try) + ")";
      }
      s.textContent = text;
      el.sources.appendChild(s);
    }
  }

  // A refresh asked for while one is under way (a changed audit filter)
  // runs after it, so the tables never stay on what the old filters chose.
  let refreshing = false, refreshAgain = false;
  async function refreshTables() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    try {
      const [runs, audit, status] = await Promise.all([
        api("GET", "/console/api/runs?limit=50"),
        api("GET", auditPath()),
        api("GET", "/console/api/status"),
      ]);
      fillTable(el.runs, el.runsEmpty, runs.runs || [], renderRun);
      fillTable(el.audit, el.auditEmpty, audit.events || [], renderAudit);
      renderSources(status);
    } catch (e) {
      showStatus(e.message);
    } finally {
      refreshing = false;
      if (refreshAgain) { refreshAgain = false; refreshTables(); }
    }
  }

  function selectTab(name) {
    for (const t of ["runs", "audit"]) {
      $("tab-" + t).setAttribute("aria-selected", String(t === name));
      $("panel-" + t).hidden = t !== name;
    }
  }

  // --- wiring ---

  el.user.addEventListener("change", () => { syncOther(el.user, el.userOther); applyVisibility(); });
  el.userOther.addEventListener("input", applyVisibility);
  el.channel.addEventListener("change", () => { syncOther(el.channel, el.channelOther); switchChannel(); });
  el.channelOther.addEventListener("change", switchChannel);
  el.composer.addEventListener("submit", (e) => { e.preventDefault(); send(); });
  el.input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowUp" && state.historyAt > 0) {
      state.historyAt--;
      el.input.value = state.history[state.historyAt];
      e.preventDefault();
    } else if (e.key === "ArrowDown" && state.historyAt < state.history.length) {
      state.historyAt++;
      el.input.value = state.history[state.historyAt] || "";
      e.preventDefault();
    }
  });
  el.help.addEventListener("click", (e) => {
    const b = e.target.closest("button.cmd");
    if (!b) return;
    el.input.value = b.dataset.cmd + " ";
    el.input.focus();
  });
  $("tab-runs").addEventListener("click", () => selectTab("runs"));
  $("tab-audit").addEventListener("click", () => selectTab("audit"));
  el.auditFilters.addEventListener("submit", (e) => { e.preventDefault(); refreshTables(); });
  el.auditFilters.addEventListener("change", () => refreshTables());
  el.auditFilters.addEventListener("reset", () => setTimeout(refreshTables));

  syncOther(el.user, el.userOther);
  syncOther(el.channel, el.channelOther);
  switchChannel();
  refreshTables();
  (function loop() {
    pollTranscript();
    setTimeout(loop, document.hidden ? 5 * TRANSCRIPT_POLL_MS : TRANSCRIPT_POLL_MS);
  })();
  setInterval(() => { if (!document.hidden) refreshTables(); }, TABLES_POLL_MS);
  el.input.focus();
})();
