// The search page: free text in any configured language, facets by tag and review state.
"use strict";

(() => {
  const { api, el, label, loadImage, pct, toast } = Console;
  const state = { tags: new Set(), review: "", noneOf: "", cursor: null, lang: "", includeReview: false };
  const $ = (id) => document.getElementById(id);

  function tagLabel(tagId) {
    const [model, tag] = tagId.split("/");
    return label(model, tag, state.lang || "en");
  }

  // Highlights come as text with <em> markers: rebuild them as nodes, never as HTML.
  function highlighted(fragment) {
    const out = el("div", { class: "highlight" });
    fragment.split(/(<em>.*?<\/em>)/).forEach((part) => {
      const m = /^<em>(.*)<\/em>$/.exec(part);
      out.append(m ? el("em", { text: m[1] }) : document.createTextNode(part));
    });
    return out;
  }

  function result(hit) {
    const img = el("img", { alt: hit.asset_key });
    loadImage(img, hit.image_url);
    const chips = hit.tags
      .filter((t) => ["applied", "confirmed", "review"].includes(t.state) && t.tag !== "__none__")
      .map((t) => el("span", {
        class: `chip static${t.state === "confirmed" ? " human" : t.state === "review" ? " review" : ""}`,
        title: t.state === "confirmed" ? "confirmed by a reviewer" : t.state === "review" ? "waiting for review" : `applied by the model (${pct(t.confidence)})`,
      }, label(t.model, t.tag, state.lang || "en"), t.state === "applied" ? el("span", { class: "n", text: pct(t.confidence) }) : null));
    // A highlight says why an asset matched (a synonym, text read on the photo); one that only
    // repeats a shown tag's label, in whatever language, adds nothing.
    const shown = new Set(hit.tags.flatMap((t) => [
      label(t.model, t.tag, state.lang || "en"),
      ...Object.values(Console.model(t.model)?.tags.find((d) => d.id === t.tag)?.labels || {}),
    ]));
    const first = Object.entries(hit.highlights || {})
      .filter(([field]) => field !== "path.text")
      .map(([, fragments]) => fragments[0])
      .find((f) => !shown.has(f.replace(/<\/?em>/g, "")));
    return el("article", { class: "card result" },
      el("div", { class: "thumb" }, img),
      el("div", { class: "info" },
        el("div", { class: "path", title: hit.asset_key, text: hit.asset_key.split("/").slice(1).join("/") }),
        el("div", { class: "alts" }, chips),
        first ? highlighted(first) : null));
  }

  function renderFacets(facets) {
    if (!facets || !facets.tag_ids) return; // later pages carry no facets: keep the first page's
    const box = $("facet-tags");
    const values = new Map(facets.tag_ids.map((b) => [b.value, b.count]));
    for (const t of state.tags) if (!values.has(t)) values.set(t, 0);
    box.replaceChildren(...[...values].map(([value, count]) => {
      const input = el("input", { type: "checkbox", value });
      input.checked = state.tags.has(value);
      input.addEventListener("change", () => {
        if (input.checked) state.tags.add(value);
        else state.tags.delete(value);
        search();
      });
      return el("label", { class: "facet" }, input, el("span", { text: tagLabel(value) }), el("span", { class: "n", text: String(count) }));
    }));
    if (!values.size) box.replaceChildren(el("div", { class: "muted small", text: "No tags yet." }));
    const review = $("facet-review");
    const names = { clear: "nothing to review", pending: "waiting for review" };
    review.replaceChildren(...(facets.review_state || []).map((b) => {
      const input = el("input", { type: "radio", name: "review", value: b.value });
      input.checked = state.review === b.value;
      input.addEventListener("click", () => {
        state.review = state.review === b.value ? "" : b.value;
        search();
      });
      return el("label", { class: "facet" }, input, el("span", { text: names[b.value] || b.value }), el("span", { class: "n", text: String(b.count) }));
    }));
    // assets a model found none of its tags in (proposed for review, or confirmed)
    const none = facets.none_of || [];
    $("panel-none").hidden = !none.length && !state.noneOf;
    $("facet-none").replaceChildren(...none.map((b) => {
      const input = el("input", { type: "radio", name: "none-of", value: b.value });
      input.checked = state.noneOf === b.value;
      input.addEventListener("click", () => {
        state.noneOf = state.noneOf === b.value ? "" : b.value;
        search();
      });
      return el("label", { class: "facet" }, input, el("span", { text: b.value }), el("span", { class: "n", text: String(b.count) }));
    }));
  }

  async function search({ more = false } = {}) {
    const p = new URLSearchParams();
    const q = $("q").value.trim();
    if (q) p.set("q", q);
    if (state.lang) p.set("lang", state.lang);
    for (const t of state.tags) p.append("tag", t);
    if (state.review) p.set("review_state", state.review);
    if (state.noneOf) p.set("none_of", state.noneOf);
    if (state.includeReview) p.set("include_review", "1");
    p.set("size", "24");
    if (more && state.cursor) p.set("cursor", state.cursor);
    let page;
    try {
      page = await api(`/api/search?${p}`);
    } catch (e) {
      toast(e.message, { error: true });
      return;
    }
    state.cursor = page.next_cursor;
    const hits = page.hits.map(result);
    if (more) $("results").append(...hits);
    else $("results").replaceChildren(...hits);
    $("total").textContent = `${page.total} asset${page.total === 1 ? "" : "s"}`;
    $("active-filters").textContent = [...state.tags].map(tagLabel).join(" · ");
    $("no-results").hidden = page.total > 0;
    $("more").hidden = !page.next_cursor;
    if (!more) renderFacets(page.facets);
    if (!more) renderWaiting(page.waiting_for_review);
    history.replaceState(null, "", `/search?${new URLSearchParams(q ? { q } : {})}`);
  }

  // Tags waiting for review are not searchable until a reviewer confirms them: say how many
  // assets that leaves out, and offer to include them.
  function renderWaiting(waiting) {
    const box = $("waiting");
    box.hidden = !waiting || waiting.count === 0;
    if (box.hidden) return;
    const names = waiting.tags.map(tagLabel).join(", ");
    const n = waiting.count;
    $("waiting-text").textContent = waiting.included
      ? `Including ${n} asset${n === 1 ? "" : "s"} with ${names} still waiting for review.`
      : `${n} more asset${n === 1 ? " has" : "s have"} ${names} waiting for review.`;
    $("waiting-toggle").textContent = waiting.included ? "Show confirmed tags only" : "Include them";
  }

  // Examples from the tenant's own labels (never another tenant's products).
  function placeholder() {
    const tags = Console.models().flatMap((m) => m.tags.map((t) => ({ model: m.id, id: t.id, labels: t.labels || {} })));
    if (!tags.length) return "Search by tag, in any language, or by file name";
    // one tag per language where the tenant has labels in several: shows that any language works
    const examples = ["en", "fr", "ja"].map((lang, i) => tags[i % tags.length].labels[lang]).filter(Boolean);
    const words = examples.length ? examples : tags.slice(0, 3).map((t) => label(t.model, t.id));
    return `Search in any language: ${[...new Set(words)].join(", ")} …`;
  }

  Console.start(async () => {
    $("q").placeholder = placeholder();
    $("waiting-toggle").addEventListener("click", () => { state.includeReview = !state.includeReview; search(); });
    const langs = ["en", "fr", "de", "es", "it", "nl", "sv", "ja", "zh"];
    const names = { en: "English", fr: "Français", de: "Deutsch", es: "Español", it: "Italiano", nl: "Nederlands", sv: "Svenska", ja: "日本語", zh: "中文" };
    for (const l of langs) $("lang").append(el("option", { value: l, text: names[l] || l }));
    $("lang").addEventListener("change", () => { state.lang = $("lang").value; search(); });
    $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
    $("more").addEventListener("click", () => search({ more: true }));
    $("q").value = new URLSearchParams(location.search).get("q") || "";
    await search();
    document.body.dataset.ready = "true";
  });
})();
