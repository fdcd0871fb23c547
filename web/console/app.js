// Switchboard console: a chat playground that sends slash commands through
// the same handler as Slack and polls the channel's transcript, showing it
// as Slack would (mrkdwn, names for mentions, buttons with their state),
// next to the runs (each opens to its steps, messages, approvals and audit
// lines), the fleet, the approvals inbox and the audit log. Plain
// JavaScript, no build step, nothing loaded from the network. Text from
// the server only ever becomes text nodes: never innerHTML.
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
    runs: $("runs"), runsEmpty: $("runs-empty"), runList: $("run-list"), runDetail: $("run-detail"),
    audit: $("audit"), auditEmpty: $("audit-empty"), auditFilters: $("audit-filters"),
    fleet: $("fleet"), approvalsPending: $("approvals-pending"), approvalsDecided: $("approvals-decided"),
    approvalsCount: $("approvals-count"),
    sources: $("sources"),
  };
  const TABS = ["runs", "fleet", "approvals", "audit"];

  const state = {
    channel: "",     // the channel whose transcript is shown
    lastID: 0,       // the newest transcript line shown
    generation: 0,   // bumps on channel change so a late poll is dropped
    history: [], historyAt: 0,
    tab: "runs",
    run: "",         // the run whose detail is open
    names: new Map(),    // id → name, as the server knows them
    asked: new Set(),    // ids whose names were asked for
    approvals: new Map(), // approval id → the playground boxes showing it
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

  // --- names ---

  // nameOf is what the console shows for a user or channel id: its name
  // from the config or Slack, or the id until one is known.
  function nameOf(id) {
    if (!state.names.has(id)) askName(id);
    return state.names.get(id) || id;
  }

  let namesTimer = 0;
  function askName(id) {
    if (!id || state.asked.has(id)) return;
    state.asked.add(id);
    if (!namesTimer) namesTimer = setTimeout(fetchNames, 50);
  }

  async function fetchNames() {
    namesTimer = 0;
    const ids = [...state.asked].filter((id) => !state.names.has(id)).slice(0, 100);
    if (!ids.length) return;
    try {
      const data = await api("GET", "/console/api/names?" + new URLSearchParams({ ids: ids.join(",") }));
      const names = data.names || {};
      for (const id of ids) state.names.set(id, names[id] || "");
      for (const node of document.querySelectorAll("[data-name-of]")) {
        const name = state.names.get(node.dataset.nameOf);
        if (name) node.textContent = (node.dataset.sigil || "") + name;
      }
    } catch (e) {
      for (const id of ids) state.asked.delete(id);
    }
  }

  // nameNode is a span that shows an id's name, and fills it in once the
  // name is known.
  function nameNode(id, sigil, cls) {
    const s = document.createElement("span");
    s.className = cls || "name";
    s.dataset.nameOf = id;
    s.dataset.sigil = sigil || "";
    s.title = id;
    s.textContent = (sigil || "") + nameOf(id);
    return s;
  }

  // --- Slack's mrkdwn, as DOM nodes ---

  const decode = (s) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

  // renderText shows text as Slack shows mrkdwn: ```code blocks```, quotes
  // (> ...), lists (• - or 1.), *bold*, _italic_, ~strike~, `code`,
  // <url|label> links, <@U123> and <#C123> mentions by name, <!here>. It
  // builds DOM nodes, never HTML strings.
  function renderText(parent, text) {
    const parts = String(text == null ? "" : text).split("```");
    parts.forEach((part, i) => {
      if (i % 2 === 1 && i < parts.length - 1) {
        const pre = document.createElement("pre");
        pre.className = "code-block";
        pre.textContent = decode(part.replace(/^\n/, ""));
        parent.appendChild(pre);
      } else {
        renderLines(parent, i % 2 === 1 ? "```" + part : part);
      }
    });
  }

  // renderLines groups lines into quotes, lists and plain lines.
  function renderLines(parent, text) {
    if (!text) return;
    const lines = text.split("\n");
    let group = null, kind = "";
    const close = () => { group = null; kind = ""; };
    lines.forEach((line, i) => {
      let m;
      if ((m = /^(?:&gt;|>)\s?(.*)$/.exec(line))) {
        if (kind !== "quote") { group = document.createElement("blockquote"); parent.appendChild(group); kind = "quote"; }
        else group.appendChild(document.createElement("br"));
        renderInline(group, m[1]);
      } else if ((m = /^\s*(?:[•◦▪-])\s+(.*)$/.exec(line)) || (m = /^\s*(\d+)[.)]\s+(.*)$/.exec(line))) {
        const ordered = m.length === 3;
        const want = ordered ? "ol" : "ul";
        if (kind !== want) { group = document.createElement(want); parent.appendChild(group); kind = want; }
        const li = document.createElement("li");
        renderInline(li, ordered ? m[2] : m[1]);
        group.appendChild(li);
      } else {
        close();
        const span = document.createElement("span");
        span.className = "mrkdwn-line";
        renderInline(span, line);
        parent.appendChild(span);
        if (i < lines.length - 1 && !/^(?:&gt;|>)|^\s*(?:[•◦▪-]|\d+[.)])\s/.test(lines[i + 1])) parent.appendChild(document.createElement("br"));
      }
    });
  }

  const INLINE = /`([^`\n]+)`|<([^<>\n]+)>|(?<![\w*])\*(?!\s)([^*\n]+?)\*(?![\w*])|(?<![\w_])_(?!\s)([^_\n]+?)_(?![\w_])|(?<![\w~])~(?!\s)([^~\n]+?)~(?![\w~])/g;

  function renderInline(parent, text) {
    const re = new RegExp(INLINE.source, "g");
    let at = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > at) parent.appendChild(document.createTextNode(decode(text.slice(at, m.index))));
      if (m[1] !== undefined) {
        const code = document.createElement("code");
        code.textContent = decode(m[1]);
        parent.appendChild(code);
      } else if (m[2] !== undefined) {
        parent.appendChild(special(m[2]));
      } else {
        const tag = m[3] !== undefined ? "strong" : m[4] !== undefined ? "em" : "s";
        const node = document.createElement(tag);
        renderInline(node, m[3] ?? m[4] ?? m[5]);
        parent.appendChild(node);
      }
      at = re.lastIndex;
    }
    if (at < text.length) parent.appendChild(document.createTextNode(decode(text.slice(at))));
  }

  // special renders what Slack writes between < and >: a mention, a
  // channel, a broadcast, or a link.
  function special(inner) {
    const bar = inner.indexOf("|");
    const target = bar < 0 ? inner : inner.slice(0, bar);
    const label = bar < 0 ? "" : decode(inner.slice(bar + 1));
    if (target[0] === "@") {
      const n = nameNode(target.slice(1), "@", "mention");
      if (label && !state.names.get(target.slice(1))) n.textContent = "@" + label.replace(/^@/, "");
      return n;
    }
    if (target[0] === "#") {
      const n = nameNode(target.slice(1), "#", "mention channel");
      if (label && !state.names.get(target.slice(1))) n.textContent = "#" + label;
      return n;
    }
    if (target[0] === "!") {
      const word = target.slice(1).split("^")[0];
      return span("mention", label || "@" + word);
    }
    if (/^(https?:\/\/|mailto:)/i.test(target)) {
      const a = document.createElement("a");
      a.href = decode(target);
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      a.textContent = label || decode(target);
      return a;
    }
    return document.createTextNode(label || decode(target));
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
        li.appendChild(line.user_id ? nameNode(line.user_id, "", "who") : span("who", "someone"));
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
    if (line.approval_id) li.appendChild(approvalButtons(line.approval_id, line.approval));
    return li;
  }

  // approvalButtons are an approval request's Approve and Deny buttons, as
  // Slack shows them; they answer as the selected user. Once the approval
  // is decided (by anyone, here or in Slack) the buttons are disabled, the
  // chosen one marked, and a line says who decided and when.
  function approvalButtons(id, approval) {
    const box = document.createElement("div");
    box.className = "approval";
    box.dataset.approval = id;
    box.appendChild(decisionButtons(id, ""));
    box.appendChild(span("approval-decided", ""));
    const show = (ap) => showApprovalState(box, ap);
    if (!state.approvals.has(id)) state.approvals.set(id, new Set());
    state.approvals.get(id).add(show);
    show.pending = !approval || approval.state === "pending";
    if (approval) show(approval);
    else box.dataset.state = "pending";
    return box;
  }

  // decisionButtons are Approve and Deny for an approval, as Slack shows
  // them, answering as the selected user; with why, they are disabled and
  // say why. The playground and the inbox both use them, and both go
  // through the same API as a click would.
  function decisionButtons(id, why) {
    const buttons = document.createElement("div");
    buttons.className = "approval-buttons";
    const result = span("approval-result", why);
    for (const [label, approve] of [["Approve", true], ["Deny", false]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.className = approve ? "approve" : "deny";
      b.disabled = !!why;
      if (why) b.title = why;
      b.addEventListener("click", async () => {
        try {
          const data = await decide(id, approve);
          result.replaceChildren();
          renderText(result, data.text);
          refreshInbox();
          refreshApprovals([id]);
        } catch (e) {
          result.textContent = e.message;
        }
      });
      buttons.appendChild(b);
    }
    buttons.appendChild(result);
    return buttons;
  }

  // showApprovalState shows an approval as it stands in a playground box.
  function showApprovalState(box, ap) {
    box.dataset.state = ap.state;
    if (ap.state === "pending") return;
    for (const btn of box.querySelectorAll("button")) {
      btn.disabled = true;
      const chosen = ap.state === "approved" ? "approve" : ap.state === "denied" ? "deny" : "";
      btn.classList.toggle("chosen", btn.classList.contains(chosen));
    }
    const line = box.querySelector(".approval-decided");
    line.replaceChildren(...decisionNodes(ap));
  }

  // decisionNodes say how an approval was decided: "✅ Approved by @ben at
  // 12:03:04".
  function decisionNodes(ap) {
    const nodes = [];
    const winning = (ap.decisions || []).filter((d) => d.approve === (ap.state === "approved"));
    const word = { approved: "✓ Approved by ", denied: "✗ Denied by ", "timed out": "Timed out" }[ap.state] || ap.state;
    nodes.push(document.createTextNode(word));
    if (ap.state === "approved" || ap.state === "denied") {
      winning.forEach((d, i) => {
        if (i) nodes.push(document.createTextNode(", "));
        nodes.push(nameNode(d.user, "@", "mention"));
      });
    }
    if (ap.decided_at) {
      nodes.push(document.createTextNode(" at "));
      const t = document.createElement("time");
      t.dateTime = ap.decided_at;
      t.textContent = formatTime(ap.decided_at);
      nodes.push(t);
    }
    return nodes;
  }

  // decide answers an approval as the selected user, through the same
  // path for the playground's buttons and the inbox's.
  function decide(id, approve) {
    return api("POST", "/console/api/approvals/" + encodeURIComponent(id), { user: currentUser(), approve });
  }

  // refreshApprovals reads approvals again (those shown as pending when
  // no ids are given) and updates every box that shows them.
  async function refreshApprovals(ids) {
    if (!ids) {
      ids = [];
      for (const [id, shows] of state.approvals) {
        let pending = false;
        for (const show of shows) pending = pending || show.pending !== false;
        if (pending) ids.push(id);
      }
    }
    ids = ids.slice(0, 100);
    if (!ids.length) return;
    try {
      const data = await api("GET", "/console/api/approvals?" + new URLSearchParams({ ids: ids.join(",") }));
      for (const ap of data.approvals || []) {
        for (const show of state.approvals.get(ap.id) || []) {
          show(ap);
          show.pending = ap.state === "pending";
        }
      }
    } catch (e) {
      showStatus(e.message);
    }
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
    state.approvals.clear();
    el.title.replaceChildren(channel ? nameNode(channel, "#", "channel-name") : document.createTextNode("Pick a channel"));
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

  // --- runs ---

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
    if (empty) empty.hidden = rows.length > 0;
  }

  // runState is a run's state as the console shows it: a finished run that
  // changed nothing says so (refused, nothing to do) instead of succeeded.
  const runState = (run) => run.outcome || run.state;

  function stateCell(tr, value) {
    const td = cell(tr, "", "state");
    td.appendChild(span("state-badge", value));
    td.dataset.state = value;
    return td;
  }

  function runLink(id, text) {
    const a = document.createElement("a");
    a.href = "#run/" + encodeURIComponent(id);
    a.className = "run-link mono";
    a.textContent = text || id;
    a.title = id;
    return a;
  }

  function renderRun(tr, run) {
    const req = run.request || {};
    tr.className = "run-row";
    tr.dataset.run = run.id;
    const id = cell(tr, "", "run-id");
    id.appendChild(runLink(run.id, (run.id || "").slice(0, 12)));
    cell(tr, run.workflow);
    stateCell(tr, runState(run));
    const who = cell(tr, "");
    if (req.user_id) who.appendChild(nameNode(req.user_id, "", "name"));
    const where = cell(tr, "");
    if (req.channel_id) where.appendChild(nameNode(req.channel_id, "#", "name"));
    cell(tr, formatTime(run.created_at), "time", run.created_at);
    // The first line only: the run's detail has the rest.
    const full = run.error || run.result || "";
    const lines = full.split("\n");
    const res = cell(tr, "", run.error ? "failed result" : "result", lines.length > 1 ? full : "");
    renderText(res, lines[0] + (lines.length > 1 ? " …" : ""));
    tr.addEventListener("click", (e) => {
      if (e.target.closest("a")) return;
      location.hash = "#run/" + encodeURIComponent(run.id);
    });
  }

  function duration(from, to) {
    if (!from) return "";
    const a = new Date(from), b = to ? new Date(to) : new Date();
    let ms = Math.max(0, b - a);
    if (ms < 1000) return ms + " ms";
    const s = Math.round(ms / 100) / 10;
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    return m + " min " + Math.round(s - m * 60) + " s";
  }

  function heading(text) {
    const h = document.createElement("h3");
    h.textContent = text;
    return h;
  }

  function table(headers, rows, render, cls) {
    const t = document.createElement("table");
    if (cls) t.className = cls;
    const head = t.createTHead().insertRow();
    for (const h of headers) {
      const th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    }
    t.appendChild(document.createElement("tbody"));
    fillTable(t, null, rows, render);
    return t;
  }

  function field(dl, label, value) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value == null ? "" : String(value);
    dl.append(dt, dd);
    return dd;
  }

  // renderRunDetail shows one run: what it is, its steps, the messages it
  // sent, its approvals and deciders, its audit lines and its error.
  function renderRunDetail(d) {
    const run = d.run, req = run.request || {};
    const box = document.createDocumentFragment();
    const back = document.createElement("a");
    back.href = "#runs";
    back.className = "back";
    back.textContent = "← All runs";
    box.appendChild(back);

    const title = document.createElement("h2");
    title.className = "run-title";
    title.append(document.createTextNode((run.workflow || "run") + " "));
    const badge = span("state", "");
    badge.dataset.state = runState(run);
    badge.appendChild(span("state-badge", runState(run)));
    title.appendChild(badge);
    box.appendChild(title);

    const dl = document.createElement("dl");
    dl.className = "run-facts";
    field(dl, "Run", span("mono nowrap", run.id));
    const who = document.createElement("span");
    if (req.user_id) who.appendChild(nameNode(req.user_id, "@", "mention"));
    if (req.channel_id) who.append(document.createTextNode(" in "), nameNode(req.channel_id, "#", "mention"));
    if (req.source) who.append(document.createTextNode(" via " + req.source));
    field(dl, "Requested by", who);
    if (req.command) field(dl, "Command", span("mono", (req.command + " " + (req.text || "")).trim()));
    field(dl, "Created", formatTime(run.created_at));
    if (run.finished_at) field(dl, "Finished", formatTime(run.finished_at) + " (" + duration(run.created_at, run.finished_at) + ")");
    if (run.outcome) field(dl, "Outcome", run.outcome);
    if (run.result) renderText(field(dl, "Result", ""), run.result);
    box.appendChild(dl);
    if (run.error) {
      const err = document.createElement("div");
      err.className = "run-error";
      err.appendChild(span("label", "Error: "));
      renderText(err, run.error);
      box.appendChild(err);
    }

    box.appendChild(heading("Steps"));
    const plan = run.plan || [];
    const steps = run.steps || [];
    if (!steps.length) box.appendChild(span("empty", "No step has started yet."));
    else box.appendChild(table(["#", "Step", "State", "Started", "Duration"], steps, (tr, st) => {
      cell(tr, st.index + 1, "num");
      const p = plan[st.index] || {};
      cell(tr, st.kind + (st.id ? " (" + st.id + ")" : "") + (p.section === "on_error" ? " — on error" : ""), "mono");
      stateCell(tr, st.state);
      cell(tr, formatTime(st.started_at), "time", st.started_at);
      cell(tr, st.state === "skipped" ? "" : duration(st.started_at, st.finished_at || (run.finished_at && st.state !== "waiting" ? run.finished_at : "")), "time");
    }, "steps"));

    box.appendChild(heading("Messages"));
    if (!d.messages.length) box.appendChild(span("empty", "It has said nothing yet."));
    else box.appendChild(table(["Time", "Delivery", "Text"], d.messages, (tr, m) => {
      cell(tr, formatTime(m.sent_at || m.created_at), "time", m.sent_at || m.created_at);
      const via = m.via === "failed" ? "failed" : m.sent_at ? m.via : "waiting";
      const td = cell(tr, via, "via");
      td.dataset.state = via;
      if (m.error) td.title = m.error;
      const text = cell(tr, "", "text");
      renderText(text, m.text);
      if (m.approval_id) text.appendChild(span("tag", "approval buttons"));
      if (m.error && via !== "console") {
        const e = span("failed block", "");
        renderText(e, m.error);
        text.appendChild(e);
      }
    }, "messages"));

    box.appendChild(heading("Approvals"));
    if (!d.approvals.length) box.appendChild(span("empty", "It asked for no approval."));
    else box.appendChild(table(["Asked", "Question", "State", "Approvers", "Decisions"], d.approvals, (tr, ap) => {
      cell(tr, formatTime(ap.created_at), "time", ap.created_at);
      renderText(cell(tr, ""), ap.text);
      stateCell(tr, ap.state);
      const who = cell(tr, "");
      (ap.approvers || []).forEach((u, i) => { if (i) who.append(", "); who.appendChild(nameNode(u, "@", "mention")); });
      if (ap.quorum > 1) who.append(" (" + ap.quorum + " needed)");
      const dec = cell(tr, "", "decisions");
      for (const x of ap.decisions || []) {
        const line = document.createElement("div");
        line.append(x.approve ? "✓ " : "✗ ", nameNode(x.user, "@", "mention"), " " + (x.approve ? "approved" : "denied") + " at " + formatTime(x.at) + " via " + x.source);
        dec.appendChild(line);
      }
      if (ap.state === "timed out") dec.append("timed out at " + formatTime(ap.decided_at));
    }, "approvals-of-run"));

    box.appendChild(heading("Audit"));
    if (!d.audit.length) box.appendChild(span("empty", "No audit lines."));
    else box.appendChild(table(["Time", "Kind", "Actor", "Subject", "Outcome", "Detail"], d.audit, (tr, ev) => {
      cell(tr, formatTime(ev.time), "time", ev.time);
      cell(tr, ev.kind);
      const actor = cell(tr, "", "nowrap");
      if (/^[UW][A-Z0-9]+$/.test(ev.actor || "")) actor.appendChild(nameNode(ev.actor, "@", "mention"));
      else actor.textContent = ev.actor || "";
      cell(tr, ev.subject);
      const out = cell(tr, ev.outcome, "outcome");
      out.dataset.outcome = ev.outcome || "";
      cell(tr, ev.detail, "detail");
    }, "run-audit"));

    el.runDetail.replaceChildren(box);
    el.runDetail.dataset.run = run.id;
    el.runDetail.dataset.state = runState(run);
  }

  async function refreshRunDetail() {
    const id = state.run;
    if (!id) return;
    try {
      const d = await api("GET", "/console/api/runs/" + encodeURIComponent(id));
      if (state.run === id) renderRunDetail(d);
    } catch (e) {
      if (state.run !== id) return;
      const p = document.createElement("p");
      p.className = "failed";
      p.textContent = e.message;
      const back = document.createElement("a");
      back.href = "#runs";
      back.className = "back";
      back.textContent = "← All runs";
      el.runDetail.replaceChildren(back, p);
    }
  }

  // --- audit ---

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

  // --- fleet ---

  function chip(text, cls) {
    return span("chip" + (cls ? " " + cls : ""), text);
  }

  // renderFleet shows each cloud's instances: state, address, tags and the
  // commands that may touch them.
  function renderFleet(clouds) {
    const box = document.createDocumentFragment();
    if (!clouds.length) box.appendChild(span("empty", "No clouds are configured."));
    for (const c of clouds) {
      const section = document.createElement("section");
      section.className = "cloud";
      section.dataset.cloud = c.name;
      section.appendChild(heading("Cloud " + c.name + " — " + c.instances.length + " instance" + (c.instances.length === 1 ? "" : "s")));
      if (c.error) section.appendChild(span("failed block", "Could not describe it: " + c.error));
      section.appendChild(table(["Name", "Instance", "State", "Address", "Type", "Tags", "Commands"], c.instances, (tr, inst) => {
        tr.dataset.instance = inst.id;
        cell(tr, inst.name || "");
        cell(tr, inst.id, "mono nowrap");
        stateCell(tr, inst.state);
        const addr = cell(tr, "", "mono");
        if (inst.public_ip) addr.appendChild(span("address public", inst.public_ip));
        if (inst.private_ip) addr.appendChild(span("address private", inst.private_ip));
        cell(tr, inst.type || "", "mono");
        const tags = cell(tr, "", "chips");
        for (const k of Object.keys(inst.tags || {}).sort()) {
          if (k === "Name") continue;
          tags.appendChild(chip(k + "=" + inst.tags[k]));
        }
        const cmds = cell(tr, "", "chips");
        if (!(inst.commands || []).length) cmds.appendChild(span("muted", "none"));
        for (const cmd of inst.commands || []) cmds.appendChild(chip(cmd, "cmd"));
      }, "fleet-table"));
      box.appendChild(section);
    }
    el.fleet.replaceChildren(box);
  }

  // --- approvals inbox ---

  // mayDecide says why the selected user may not answer an approval, or
  // "" when they may: the same rules the server applies.
  function mayDecide(ap, user) {
    if (ap.state !== "pending") return "It was already decided.";
    if (!(ap.approvers || []).includes(user)) return "You are not one of its approvers.";
    if (user === ap.requester && !ap.allow_requester) return "You started this run, so someone else has to approve it.";
    if ((ap.decisions || []).some((d) => d.user === user)) return "You have already answered.";
    return "";
  }

  function renderInbox(data) {
    const user = currentUser();
    const pending = data.pending || [];
    el.approvalsCount.textContent = pending.length ? String(pending.length) : "";
    el.approvalsCount.hidden = !pending.length;
    const list = document.createDocumentFragment();
    if (!pending.length) list.appendChild(span("empty", "Nothing waits for an approval."));
    for (const ap of pending) {
      const card = document.createElement("article");
      card.className = "inbox-item";
      card.dataset.approval = ap.id;
      const q = document.createElement("p");
      q.className = "question";
      renderText(q, ap.text);
      card.appendChild(q);
      const meta = document.createElement("p");
      meta.className = "meta";
      meta.append("Run ", runLink(ap.run_id, ap.run_id.slice(0, 12)), " in ", nameNode(ap.channel, "#", "mention"),
        " · asked " + formatTime(ap.created_at) + " · until " + formatTime(ap.deadline) + " · approvers: ");
      (ap.approvers || []).forEach((u, i) => { if (i) meta.append(", "); meta.appendChild(nameNode(u, "@", "mention")); });
      if (ap.quorum > 1) meta.append(" · " + (ap.decisions || []).filter((d) => d.approve).length + " of " + ap.quorum + " approvals");
      card.appendChild(meta);
      card.appendChild(decisionButtons(ap.id, mayDecide(ap, user)));
      list.appendChild(card);
    }
    el.approvalsPending.replaceChildren(list);

    const decided = data.decided || [];
    const hist = document.createDocumentFragment();
    if (!decided.length) hist.appendChild(span("empty", "No approval has been decided yet."));
    else hist.appendChild(table(["Question", "Decision", "When", "Run"], decided, (tr, ap) => {
      tr.dataset.approval = ap.id;
      renderText(cell(tr, ""), ap.text);
      const dec = cell(tr, "", "decision");
      dec.dataset.state = ap.state;
      dec.append(...decisionNodes({ ...ap, decided_at: "" }));
      cell(tr, formatTime(ap.decided_at), "time", ap.decided_at);
      cell(tr, "").appendChild(runLink(ap.run_id, ap.run_id.slice(0, 12)));
    }, "history"));
    el.approvalsDecided.replaceChildren(hist);
  }

  let inboxData = null;
  async function refreshInbox() {
    try {
      inboxData = await api("GET", "/console/api/approvals?limit=50");
      renderInbox(inboxData);
    } catch (e) {
      showStatus(e.message);
    }
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

  // refreshTables reads what the open views show: the runs (or the open
  // run), the audit log, the fleet while it is shown, the approvals inbox
  // and the trigger sources. A refresh asked for while one is under way (a
  // changed audit filter) runs after it, so the tables never stay on what
  // the old filters chose.
  let refreshing = false, refreshAgain = false;
  async function refreshTables() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    try {
      const [runs, audit, status, fleet] = await Promise.all([
        api("GET", "/console/api/runs?limit=50"),
        api("GET", auditPath()),
        api("GET", "/console/api/status"),
        state.tab === "fleet" ? api("GET", "/console/api/fleet") : null,
        refreshInbox(),
        refreshApprovals(),
        state.run ? refreshRunDetail() : null,
      ]);
      fillTable(el.runs, el.runsEmpty, runs.runs || [], renderRun);
      fillTable(el.audit, el.auditEmpty, audit.events || [], renderAudit);
      if (fleet) renderFleet(fleet.clouds || []);
      renderSources(status);
    } catch (e) {
      showStatus(e.message);
    } finally {
      refreshing = false;
      if (refreshAgain) { refreshAgain = false; refreshTables(); }
    }
  }

  // route shows what the address names: #runs, #run/ID, #fleet,
  // #approvals, #audit.
  function route() {
    const hash = decodeURIComponent(location.hash.replace(/^#/, ""));
    let tab = "runs", run = "";
    if (hash.startsWith("run/")) run = hash.slice(4);
    else if (TABS.includes(hash)) tab = hash;
    state.tab = tab;
    state.run = run;
    for (const t of TABS) {
      $("tab-" + t).setAttribute("aria-selected", String(t === tab));
      $("panel-" + t).hidden = t !== tab;
    }
    el.runList.hidden = !!run;
    el.runDetail.hidden = !run;
    if (run) {
      el.runDetail.replaceChildren(span("empty", "Loading run " + run + "…"));
      refreshRunDetail();
    }
    if (tab === "fleet") api("GET", "/console/api/fleet").then((d) => renderFleet(d.clouds || []), (e) => showStatus(e.message));
    if (tab === "approvals" && inboxData) renderInbox(inboxData);
  }

  // --- wiring ---

  el.user.addEventListener("change", () => {
    syncOther(el.user, el.userOther);
    applyVisibility();
    if (inboxData) renderInbox(inboxData);
  });
  el.userOther.addEventListener("input", () => { applyVisibility(); if (inboxData) renderInbox(inboxData); });
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
  for (const t of TABS) $("tab-" + t).addEventListener("click", () => { location.hash = "#" + t; });
  window.addEventListener("hashchange", route);
  el.auditFilters.addEventListener("submit", (e) => { e.preventDefault(); refreshTables(); });
  el.auditFilters.addEventListener("change", () => refreshTables());
  el.auditFilters.addEventListener("reset", () => setTimeout(refreshTables));

  syncOther(el.user, el.userOther);
  syncOther(el.channel, el.channelOther);
  switchChannel();
  route();
  refreshTables();
  (function loop() {
    pollTranscript();
    setTimeout(loop, document.hidden ? 5 * TRANSCRIPT_POLL_MS : TRANSCRIPT_POLL_MS);
  })();
  setInterval(() => { if (!document.hidden) refreshTables(); }, TABLES_POLL_MS);
  el.input.focus();
})();
