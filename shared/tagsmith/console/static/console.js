// Shared by every console page: the token, API calls, authenticated images, labels, toasts.
// Data from the API is only ever inserted with textContent, never as HTML.
"use strict";

const Console = (() => {
  const TOKEN_KEY = "tagsmith.token";
  let models = [];
  let broken = []; // active model versions that cannot be loaded: {id, version, error}

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY);
  }

  function saveToken(value) {
    localStorage.setItem(TOKEN_KEY, value);
  }

  function signOut() {
    localStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Authorization: `Bearer ${token()}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = res.headers.get("content-type")?.includes("json") ? await res.json() : {};
    if (!res.ok) {
      if (res.status === 401) showSignIn(data.error);
      throw new ApiError(res.status, data.error || `HTTP ${res.status}`);
    }
    return data;
  }

  // <img> cannot send the Authorization header: fetch the bytes and show them as a blob URL.
  const imageCache = new Map();
  async function loadImage(img, url) {
    try {
      if (!imageCache.has(url)) {
        imageCache.set(url, (async () => {
          const res = await fetch(url, { headers: { Authorization: `Bearer ${token()}` } });
          if (!res.ok) throw new ApiError(res.status, `image ${res.status}`);
          return URL.createObjectURL(await res.blob());
        })());
      }
      img.src = await imageCache.get(url);
    } catch (e) {
      imageCache.delete(url);
      // e.g. an upload that is not an image: say so instead of showing a broken picture
      img.replaceWith(el("div", { class: "no-image", text: e.status === 404 ? "no preview: the asset is gone" : "no preview: not an image Tagsmith can show" }));
    }
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the CSP, unlike style attributes
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child !== undefined && child !== null) node.append(child);
    }
    return node;
  }

  function toast(message, { error = false } = {}) {
    const box = document.getElementById("toasts");
    const t = el("div", { class: `toast${error ? " error" : ""}`, role: "status", text: message });
    box.append(t);
    setTimeout(() => t.remove(), error ? 6000 : 3000);
  }

  function setModels(list, unloadable = []) {
    models = list;
    broken = unloadable;
  }

  function model(id) {
    return models.find((m) => m.id === id);
  }

  function label(modelId, tagId, lang = "en") {
    if (tagId === "__none__") return "none of the trained tags";
    const tag = model(modelId)?.tags.find((t) => t.id === tagId);
    const labels = tag?.labels || {};
    return labels[lang] || labels.en || tagId.replace(/[-_]/g, " ");
  }

  function pct(x) {
    return x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`;
  }

  function showSignIn(message) {
    document.getElementById("app").hidden = true;
    document.getElementById("who").hidden = true;
    document.getElementById("signin").hidden = false;
    const err = document.getElementById("signin-error");
    err.hidden = !message;
    err.textContent = message || "";
    document.getElementById("token").focus();
  }

  // Start a page: take a token from the URL fragment (#token=...) or storage, check it, then run.
  async function start(run) {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.get("token")) {
      saveToken(fragment.get("token"));
      history.replaceState(null, "", location.pathname + location.search);
    }
    document.getElementById("sign-out").addEventListener("click", signOut);
    document.getElementById("signin-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      saveToken(document.getElementById("token").value.trim());
      location.reload();
    });
    if (!token()) return showSignIn();
    let me;
    try {
      me = await api("/api/me");
      const got = await api("/api/models");
      setModels(got.models, got.broken || []);
    } catch (e) {
      if (e.status !== 401) toast(e.message, { error: true });
      return;
    }
    document.getElementById("who-tenant").textContent = me.tenant;
    document.getElementById("who-name").textContent = `${me.name} · ${me.role}`;
    document.getElementById("who").hidden = false;
    document.getElementById("app").hidden = false;
    await run(me);
  }

  return { api, ApiError, broken: () => broken, el, label, loadImage, model, models: () => models, pct, setModels, start, toast };
})();
