// The review queue: cards in queue order (most informative first), decisions by mouse or keyboard.
"use strict";

(() => {
  const { api, el, label, loadImage, pct, toast } = Console;
  const state = { items: [], focus: 0, selected: new Set(), me: null, busy: false, pickFor: null };
  const $ = (id) => document.getElementById(id);

  function filters() {
    const p = new URLSearchParams();
    for (const [key, id] of [["model", "f-model"], ["tag", "f-tag"], ["min_confidence", "f-min"], ["max_confidence", "f-max"]]) {
      if ($(id).value !== "") p.set(key, $(id).value);
    }
    p.set("limit", "60");
    return p;
  }

  async function refresh() {
    let data;
    try {
      data = await api(`/api/queue?${filters()}`);
    } catch (e) {
      toast(e.message, { error: true });
      return;
    }
    const keep = state.items[state.focus]?.id;
    state.items = data.items;
    const ids = new Set(state.items.map((i) => i.id));
    for (const id of [...state.selected]) if (!ids.has(id)) state.selected.delete(id);
    const again = state.items.findIndex((i) => i.id === keep);
    state.focus = Math.max(0, Math.min(again >= 0 ? again : state.focus, state.items.length - 1));
    renderBacklog(data.backlog);
    renderQueue(data);
  }

  function renderFilterOptions() {
    const models = Console.models();
    const modelSel = $("f-model");
    for (const m of models) modelSel.append(el("option", { value: m.id, text: m.id }));
    const fillTags = () => {
      const tagSel = $("f-tag");
      const current = tagSel.value;
      tagSel.replaceChildren(el("option", { value: "", text: "All tags" }));
      for (const m of models.filter((m) => !modelSel.value || m.id === modelSel.value)) {
        for (const t of m.tags) tagSel.append(el("option", { value: t.id, text: label(m.id, t.id) }));
      }
      tagSel.value = [...tagSel.options].some((o) => o.value === current) ? current : "";
    };
    fillTags();
    modelSel.addEventListener("change", () => { fillTags(); refresh(); });
    for (const id of ["f-tag", "f-min", "f-max"]) $(id).addEventListener("change", refresh);
    $("f-clear").addEventListener("click", () => {
      for (const id of ["f-model", "f-tag", "f-min", "f-max"]) $(id).value = "";
      fillTags();
      refresh();
    });
  }

  function renderBacklog(entries) {
    const table = $("backlog");
    // a button per row: filtering to a backlog entry must work from the keyboard too
    table.replaceChildren(...entries.map((b) => el("tr", {},
      el("td", {}, el("button", {
        type: "button", title: "Show only these items", dataset: { action: "backlog" },
        onclick: () => {
          $("f-model").value = b.model;
          $("f-model").dispatchEvent(new Event("change"));
          $("f-tag").value = b.tag;
          refresh();
        },
      }, `${b.model} · ${label(b.model, b.tag)}`)),
      el("td", { class: "n", text: String(b.pending) }))));
    $("backlog-empty").hidden = entries.length > 0;
  }

  function renderModels() {
    const box = $("models");
    box.replaceChildren();
    for (const m of Console.models()) {
      const c = m.corrections || {};
      const every = c.every || 0;
      const since = c.since_request || 0;
      const last = (c.requests || []).slice(-1)[0];
      const t = m.training || {};
      const node = el("div", { class: "model" },
        el("div", { class: "name", text: m.id }),
        el("div", { class: "muted small", text: `${m.kind} · ${m.tags.length} tags · version ${m.version}` }),
        el("div", { class: "small", text: `cross-validated accuracy ${pct(m.cv_accuracy)} on ${m.examples} examples` }));
      if (every > 0) {
        node.append(
          el("div", { class: "small", text: `${since} of ${every} new corrections before the next retrain` }),
          el("div", { class: "progress" }, el("div", { class: "fill", style: `width:${Math.min(100, (100 * since) / every)}%` })));
      }
      if (last && last.baseline && last.baseline.cv_accuracy !== undefined) {
        const before = last.baseline.cv_accuracy;
        const after = t.state === "trained" && t.version !== last.baseline.version ? t.cv_accuracy : null;
        const moved = el("div", { class: "small moved" }, `last retrain (${last.name}): cv ${pct(before)} → `);
        if (after === null) moved.append(el("span", { class: "muted", text: t.state === "training" ? "training…" : "pending" }));
        else moved.append(el("span", { class: after >= before ? "up" : "down", text: `${pct(after)}` }),
          ` · examples ${last.baseline.examples} → ${t.examples ?? "?"}`);
        node.append(moved);
      }
      if (state.me?.can_decide) {
        node.append(el("button", {
          class: "btn", type: "button", style: "margin-top:6px", text: "Retrain now",
          onclick: async () => {
            try {
              const r = await api(`/api/models/${encodeURIComponent(m.id)}/retrain`, { method: "POST" });
              toast(r.coalesced ? `A retrain of ${m.id} is already waiting; it will include every correction`
                : `Retrain of ${m.id} requested on its examples plus every reviewed correction`);
            } catch (e) { toast(e.message, { error: true }); }
          },
        }));
      }
      box.append(node);
    }
    for (const b of Console.broken()) {
      box.append(el("div", { class: "model broken" },
        el("div", { class: "name", text: b.id }),
        el("div", { class: "small", text: `version ${b.version} cannot be loaded: ${b.error}` }),
        el("div", { class: "muted small", text: "its uploads wait (and retry) until it is rolled back or retrained" })));
    }
  }

  function card(item, index) {
    const img = el("img", { alt: item.asset_path });
    loadImage(img, `${item.image_url}&max=640`);
    const fill = el("div", { class: "fill", style: `width:${Math.round(item.confidence * 100)}%` });
    const threshold = el("div", { class: "threshold", style: `left:${Math.round(item.threshold * 100)}%`, title: `auto-apply threshold ${pct(item.threshold)}` });
    const alts = item.alternatives.map((a, n) => el("button", {
      class: "chip", type: "button", title: `Pick ${label(item.model, a.tag)} (${n + 1})`,
      dataset: { action: "pick", tag: a.tag },
      onclick: () => decide(item, "pick", a.tag),
    }, n < 9 ? el("kbd", { text: String(n + 1) }) : null, label(item.model, a.tag), el("span", { class: "n", text: pct(a.confidence) })));
    const checkbox = el("input", { type: "checkbox", class: "select", "aria-label": "Select for bulk accept" });
    checkbox.checked = state.selected.has(item.id);
    checkbox.addEventListener("change", () => toggle(item.id));
    const node = el("article", {
      class: `card${index === state.focus ? " focused" : ""}${state.selected.has(item.id) ? " selected" : ""}`,
      tabindex: "-1", dataset: { id: item.id, suggestion: item.suggestion },
      onclick: (ev) => { if (ev.target === node || ev.target.closest(".thumb")) setFocus(index); },
    },
    el("div", { class: "thumb" }, img),
    checkbox,
    el("span", { class: "rank", title: "How much a human answer would teach the model", text: `#${index + 1}` }),
    el("div", { class: "info" },
      el("div", { class: "path", title: item.asset_key, text: item.timestamp === null || item.timestamp === undefined ? item.asset_path : `${item.asset_path} · at ${item.timestamp.toFixed(1)} s` }),
      el("div", { class: "suggestion" },
        el("span", { class: "tag", text: label(item.model, item.suggestion) }),
        // "none of the trained tags": the percentage is its best tag's, too low to trust
        el("span", {
          class: "conf",
          title: item.suggestion === "__none__" ? "confidence of the best tag" : "model confidence",
          text: item.suggestion === "__none__" ? `best tag ${pct(item.confidence)}` : pct(item.confidence),
        })),
      el("div", { class: "meter" }, fill, threshold),
      el("div", { class: "muted small", text: `${item.model} · ${alts.length ? "alternatives:" : "no alternative"}` }),
      el("div", { class: "alts" }, alts),
      el("div", { class: "actions" },
        el("button", { class: "btn accept", type: "button", dataset: { action: "accept" }, onclick: () => decide(item, "accept") }, "Accept", el("kbd", { text: "A" })),
        el("button", { class: "btn reject", type: "button", dataset: { action: "reject" }, onclick: () => decide(item, "reject") }, "Reject", el("kbd", { text: "R" })),
        el("button", { class: "btn", type: "button", dataset: { action: "pick-other" }, onclick: () => openPick(item) }, "Other tag…", el("kbd", { text: "P" })),
        el("button", { class: "btn", type: "button", dataset: { action: "none" }, onclick: () => decide(item, "none") }, "None of these", el("kbd", { text: "N" })))));
    return node;
  }

  function renderQueue(data) {
    const grid = $("queue");
    grid.replaceChildren(...state.items.map(card));
    $("queue-empty").hidden = state.items.length > 0;
    if (data) $("count").textContent = `${data.total} item${data.total === 1 ? "" : "s"} to review`;
    renderSelection();
  }

  function renderSelection() {
    const n = state.selected.size;
    $("selection").textContent = n ? `${n} selected` : "";
    $("bulk-accept").disabled = n === 0 || !state.me?.can_decide;
    for (const node of document.querySelectorAll(".card")) {
      const on = state.selected.has(node.dataset.id);
      node.classList.toggle("selected", on);
      node.querySelector(".select").checked = on;
    }
  }

  function setFocus(index) {
    if (!state.items.length) return;
    state.focus = Math.max(0, Math.min(index, state.items.length - 1));
    document.querySelectorAll(".card").forEach((node, i) => node.classList.toggle("focused", i === state.focus));
    const node = document.querySelectorAll(".card")[state.focus];
    node?.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function toggle(id) {
    if (state.selected.has(id)) state.selected.delete(id);
    else state.selected.add(id);
    renderSelection();
  }

  function removeItems(ids) {
    const gone = new Set(ids);
    for (const node of document.querySelectorAll(".card")) if (gone.has(node.dataset.id)) node.classList.add("leaving");
    for (const id of ids) state.selected.delete(id);
    setTimeout(refresh, 180);
    refreshModels(); // a decision moves the corrections count towards the next retrain
  }

  async function refreshModels() {
    try {
      Console.setModels((await api("/api/models")).models);
    } catch (e) {
      return; // the panel keeps its last figures; the decision itself went through
    }
    renderModels();
  }

  async function decide(item, action, tag) {
    if (state.busy) return;
    if (!state.me.can_decide) return toast("Your token may read but not decide", { error: true });
    state.busy = true;
    try {
      const body = tag === undefined ? { action } : { action, tag };
      const r = await api(`/api/items/${encodeURIComponent(item.id)}/decision`, { method: "POST", body });
      const what = { accept: "Accepted", reject: "Rejected", pick: "Tagged", none: "No tag of" }[action];
      const name = action === "pick" ? label(item.model, tag) : action === "none" ? item.model : label(item.model, item.suggestion);
      toast(`${what} ${name} · ${item.asset_path}${r.stale.length ? " (item was stale; your decision still applies)" : ""}`);
      if (r.retrain) toast(`Enough corrections: retraining ${item.model}`);
      removeItems([item.id]);
    } catch (e) {
      toast(e.message, { error: true });
    } finally {
      state.busy = false;
    }
  }

  async function bulkAccept() {
    const ids = [...state.selected];
    if (!ids.length || state.busy) return;
    state.busy = true;
    try {
      const r = await api("/api/decisions/bulk-accept", { method: "POST", body: { item_ids: ids } });
      const failed = r.results.filter((x) => !x.ok);
      toast(`Accepted ${r.accepted} item${r.accepted === 1 ? "" : "s"}${failed.length ? `, ${failed.length} failed` : ""}`, { error: failed.length > 0 });
      removeItems(r.results.filter((x) => x.ok).map((x) => x.item_id));
    } catch (e) {
      toast(e.message, { error: true });
    } finally {
      state.busy = false;
    }
  }

  function selectSame() {
    const item = state.items[state.focus];
    if (!item) return;
    for (const i of state.items) if (i.model === item.model && i.suggestion === item.suggestion) state.selected.add(i.id);
    renderSelection();
  }

  // --- the pick dialog ---
  function openPick(item) {
    state.pickFor = item;
    $("pick-title").textContent = `Pick the right ${item.model} tag for ${item.asset_path}`;
    $("pick-filter").value = "";
    renderPickOptions();
    $("pick-dialog").hidden = false;
    $("pick-filter").focus();
  }

  function pickOptions() {
    const item = state.pickFor;
    const q = $("pick-filter").value.trim().toLowerCase();
    const m = Console.model(item.model);
    const tags = (m ? m.tags.map((t) => t.id) : item.alternatives.map((a) => a.tag)).filter((t) => t !== item.suggestion);
    return tags.filter((t) => !q || t.toLowerCase().includes(q) || label(item.model, t).toLowerCase().includes(q));
  }

  function renderPickOptions() {
    const item = state.pickFor;
    const conf = Object.fromEntries(item.alternatives.map((a) => [a.tag, a.confidence]));
    $("pick-options").replaceChildren(...pickOptions().map((t, n) => el("li", {
      class: n === 0 ? "active" : "", dataset: { tag: t },
      onclick: () => { closePick(); decide(item, "pick", t); },
    }, el("span", { text: label(item.model, t) }), el("span", { class: "muted small", text: conf[t] !== undefined ? pct(conf[t]) : "" }))));
  }

  function closePick() {
    $("pick-dialog").hidden = true;
    state.pickFor = null;
  }

  function pickKeys(ev) {
    const options = [...$("pick-options").children];
    const active = options.findIndex((o) => o.classList.contains("active"));
    if (ev.key === "Escape") { closePick(); ev.preventDefault(); return; }
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      const next = Math.max(0, Math.min(options.length - 1, active + (ev.key === "ArrowDown" ? 1 : -1)));
      options.forEach((o, i) => o.classList.toggle("active", i === next));
      ev.preventDefault();
      return;
    }
    if (ev.key === "Enter" && options[Math.max(0, active)]) {
      const item = state.pickFor;
      const tag = options[Math.max(0, active)].dataset.tag;
      closePick();
      decide(item, "pick", tag);
      ev.preventDefault();
    }
  }

  function showHelp() {
    $("help-body").replaceChildren($("shortcuts").cloneNode(true));
    $("help-dialog").hidden = false;
  }

  function onKey(ev) {
    if (!$("pick-dialog").hidden) return pickKeys(ev);
    if (!$("help-dialog").hidden) {
      if (ev.key === "Escape" || ev.key === "?") $("help-dialog").hidden = true;
      return;
    }
    const target = ev.target;
    if (target.matches("input[type=number], input[type=search], input[type=text], select")) {
      if (ev.key === "Escape") target.blur();
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const item = state.items[state.focus];
    const key = ev.key;
    const handled = () => ev.preventDefault();
    if (key === "j" || key === "ArrowRight" || key === "ArrowDown") { setFocus(state.focus + 1); return handled(); }
    if (key === "k" || key === "ArrowLeft" || key === "ArrowUp") { setFocus(state.focus - 1); return handled(); }
    if (key === "A") { bulkAccept(); return handled(); }
    if (key === "?") { showHelp(); return handled(); }
    if (key === "/") { $("f-model").focus(); return handled(); }
    if (key === "Escape") { state.selected.clear(); renderSelection(); return handled(); }
    if (!item) return;
    if (key === "a") { decide(item, "accept"); return handled(); }
    if (key === "r") { decide(item, "reject"); return handled(); }
    if (key === "n") { decide(item, "none"); return handled(); }
    if (key === "p") { openPick(item); return handled(); }
    if (key === "x" || key === " ") { toggle(item.id); return handled(); }
    if (key === "s") { selectSame(); return handled(); }
    if (/^[1-9]$/.test(key)) {
      const alt = item.alternatives[Number(key) - 1];
      if (alt) decide(item, "pick", alt.tag);
      return handled();
    }
  }

  Console.start(async (me) => {
    state.me = me;
    renderFilterOptions();
    renderModels();
    $("bulk-accept").addEventListener("click", bulkAccept);
    $("select-same").addEventListener("click", selectSame);
    $("pick-filter").addEventListener("input", renderPickOptions);
    $("pick-dialog").addEventListener("click", (ev) => { if (ev.target === $("pick-dialog")) closePick(); });
    $("help-dialog").addEventListener("click", (ev) => { if (ev.target === $("help-dialog")) $("help-dialog").hidden = true; });
    document.addEventListener("keydown", onKey);
    await refresh();
    document.body.dataset.ready = "true";
  });
})();
