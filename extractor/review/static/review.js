// Review console: keyboard-first decisions. No inline script (the Content-Security-Policy forbids it).
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (sel) => document.querySelector(sel);
  const status = (msg, bad) => { const s = $("#status"); if (s) { s.textContent = msg; s.className = "status" + (bad ? " error" : ""); } };

  async function post(url, body) {
    const r = await fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body || {}) });
    const data = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(data.error || r.statusText);
    return data;
  }

  // ------------------------------------------------------------------------------------------- edits page
  const ev = $("#evaluation");
  if (ev && ev.dataset.state === "running") setTimeout(() => location.reload(), 1500);

  // ------------------------------------------------------------------------------------------- queue page
  const queue = $("#queue");
  if (queue && !$("#entry")) {
    document.addEventListener("keydown", (e) => {
      if (e.target.closest("input, select, textarea")) return;
      const first = queue.querySelector("a.item");
      if (e.key === "n" && first) location.href = first.href;
    });
  }

  // ------------------------------------------------------------------------------------------- entry page
  const entry = $("#entry");
  if (!entry) return;
  const marks = Array.from(document.querySelectorAll("#text mark.ent"));
  let cur = marks.length ? 0 : -1;
  let selection = null;  // {start, end, surface} of the text to add

  function select(i) {
    marks.forEach((m) => m.classList.remove("current"));
    if (i < 0 || i >= marks.length) return;
    cur = i;
    marks[i].classList.add("current");
    marks[i].focus({ preventScroll: false });
  }
  marks.forEach((m, i) => m.addEventListener("click", () => select(i)));
  select(cur);

  function entity(m, extra) {
    return Object.assign({ start: +m.dataset.start, end: +m.dataset.end, label: m.dataset.label,
      canonical: m.dataset.canonical, code: m.dataset.code, code_system: m.dataset.codeSystem }, extra || {});
  }

  async function decide(action, ent, extra) {
    try {
      const res = await post("/api/decision", Object.assign({ source: entry.dataset.source, id: entry.dataset.id,
        action: action, entity: ent }, extra || {}));
      status(action + " saved" + (res.edit_id ? " (lexicon row pending)" : ""));
      const li = document.createElement("li");
      li.textContent = "you · " + action + " · " + ent.label + " [" + ent.start + ", " + ent.end + ")";
      $("#decisions").appendChild(li);
      return res;
    } catch (err) { status(err.message, true); return null; }
  }

  function markDone(cls) {
    if (cur < 0) return;
    marks[cur].classList.remove("accepted", "rejected");
    marks[cur].classList.add(cls);
    if (cur + 1 < marks.length) select(cur + 1);
  }

  // text selection -> character offsets in the entry (each chunk knows its own offset)
  function offsetOf(node, off) {
    const el = node.nodeType === Node.TEXT_NODE ? node.parentElement : node;
    const chunk = el.closest("[data-offset]");
    if (!chunk || !$("#text").contains(chunk)) return null;
    return +chunk.dataset.offset + (node.nodeType === Node.TEXT_NODE ? off : 0);
  }
  function currentSelection() {
    const s = window.getSelection();
    if (!s || s.isCollapsed || !s.rangeCount) return null;
    const r = s.getRangeAt(0);
    let a = offsetOf(r.startContainer, r.startOffset), b = offsetOf(r.endContainer, r.endOffset);
    if (a === null || b === null) return null;
    if (a > b) [a, b] = [b, a];
    const surface = s.toString().trim();  // the server trims the offsets the same way
    return b > a && surface ? { start: a, end: b, surface: surface } : null;
  }

  const panel = $("#add-panel");
  function openAdd(sel, mode) {
    selection = Object.assign(sel, { mode: mode || "add" });
    $("#add-surface").textContent = sel.surface;
    $("#add-offsets").textContent = "[" + sel.start + ", " + sel.end + ")";
    if (sel.label) $("#add-label").value = sel.label;
    $("#add-search").value = sel.surface;
    $("#add-canonical").value = ""; $("#add-code").value = ""; $("#add-system").value = "";
    panel.hidden = false;
    $("#add-search").focus();
    search();
  }
  let searchTimer = null;
  async function search() {
    const q = $("#add-search").value, label = $("#add-label").value;
    const r = await fetch("/api/lexicon/search?" + new URLSearchParams({ q: q, label: label }), { credentials: "same-origin" });
    const data = await r.json().catch(() => ({ results: [] }));
    const ul = $("#add-results");
    ul.replaceChildren();
    (data.results || []).forEach((row) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "pick";
      b.textContent = row.canonical + (row.code ? " · " + row.code_system + " " + row.code : "") + " (" + row.term + ")";
      b.addEventListener("click", () => {
        $("#add-canonical").value = row.canonical; $("#add-code").value = row.code; $("#add-system").value = row.code_system;
      });
      li.appendChild(b);
      ul.appendChild(li);
    });
  }
  $("#add-search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 200); });
  $("#add-label").addEventListener("change", search);
  async function saveAdd() {
    if (!selection) return;
    const ent = { start: selection.start, end: selection.end, label: $("#add-label").value,
      canonical: $("#add-canonical").value, code: $("#add-code").value, code_system: $("#add-system").value,
      original: selection.original || null };
    const res = await decide(selection.mode, ent);
    if (res) closeAdd();
  }
  function closeAdd() {  // back to the keyboard: focus leaves the panel's fields for the current entity
    panel.hidden = true; selection = null;
    if (document.activeElement) document.activeElement.blur();
    if (cur >= 0) select(cur);
  }
  $("#add-save").addEventListener("click", saveAdd);
  $("#add-cancel").addEventListener("click", closeAdd);
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target.tagName !== "BUTTON") { e.preventDefault(); saveAdd(); }
    if (e.key === "Escape") closeAdd();
  });

  document.addEventListener("keydown", async (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest("input, select, textarea, #add-panel")) return;
    const m = cur >= 0 ? marks[cur] : null;
    switch (e.key) {
      case "j": select(Math.min(cur + 1, marks.length - 1)); break;
      case "k": select(Math.max(cur - 1, 0)); break;
      case "a": if (m && await decide("accept", entity(m))) markDone("accepted"); break;
      case "r": if (m && await decide("reject", entity(m))) markDone("rejected"); break;
      case "x": if (m && await decide("not_entity", entity(m), { kind: "generic" })) markDone("rejected"); break;
      case "l":
        if (m) {
          const other = m.dataset.label === "ILLNESS" ? "MEDICINE" : "ILLNESS";
          if (await decide("relabel", entity(m, { label: other, canonical: "", code: "", code_system: "",
            original: { start: +m.dataset.start, end: +m.dataset.end, label: m.dataset.label } }))) {
            m.dataset.label = other; m.className = "ent " + other.toLowerCase() + " current";
          }
        }
        break;
      case "b": {  // new boundaries for the current entity: select the right words, then b
        const sel = currentSelection();
        if (sel && m) {
          e.preventDefault();
          openAdd(Object.assign(sel, { label: m.dataset.label,
            original: { start: +m.dataset.start, end: +m.dataset.end, label: m.dataset.label } }), "bounds");
        } else status("select the entity's right words first", true);
        break;
      }
      case "e": {
        const sel = currentSelection();
        if (sel) { e.preventDefault(); openAdd(sel, "add"); } else status("select some text first", true);
        break;
      }
      case "n":
        if (entry.dataset.next) location.href = entry.dataset.next; else status("no next entry in this queue");
        break;
      case "u":
        try {
          const res = await post("/api/undo");
          status("undid " + res.decision);
          const list = $("#decisions");
          if (list.lastElementChild) list.lastElementChild.remove();
        } catch (err) { status(err.message, true); }
        break;
      default: return;
    }
  });
  // selecting text with the mouse offers to add it (the e key does the same)
  $("#text").addEventListener("mouseup", () => { const sel = currentSelection(); if (sel) status("press e to add “" + sel.surface + "”"); });
})();
