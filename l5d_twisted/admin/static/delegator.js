// Dtab playground: explains how a path binds under a router's dtab plus an override.
"use strict";
(function () {
  var routers = [], form = document.getElementById("form"), sel = document.getElementById("router");
  var base = document.getElementById("base"), pathEl = document.getElementById("path");
  var errorEl = document.getElementById("error"), result = document.getElementById("result");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Any JSON as a nested list: objects show their keys, arrays their items.
  function tree(value) {
    if (value === null || typeof value !== "object") return el("span", "", String(value));
    var ul = el("ul", "tree");
    var entries = Array.isArray(value) ? value.map(function (v, i) { return [String(i), v]; }) : Object.keys(value).map(function (k) { return [k, value[k]]; });
    entries.forEach(function (kv) {
      var li = el("li");
      if (!Array.isArray(value)) li.appendChild(el("span", "k", kv[0] + ": "));
      li.appendChild(tree(kv[1]));
      ul.appendChild(li);
    });
    return ul;
  }

  function showRouter() {
    var r = routers[sel.selectedIndex];
    if (!r) return;
    base.textContent = r.dtab || "(empty)";
    if (!pathEl.value) pathEl.placeholder = r.dstPrefix.replace(/\/$/, "") + "/hello";
  }

  fetch("/admin/routers.json").then(function (resp) { return resp.json(); }).then(function (list) {
    routers = list;
    list.forEach(function (r) { var o = el("option", "", r.label); o.value = r.label; sel.appendChild(o); });
    showRouter();
  }).catch(function (e) { errorEl.textContent = "cannot load routers: " + e.message; });
  sel.addEventListener("change", showRouter);

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    errorEl.textContent = "";
    var q = new URLSearchParams({ router: sel.value, path: pathEl.value || pathEl.placeholder, dtab: document.getElementById("dtab").value });
    fetch("/delegator.json?" + q.toString()).then(function (resp) {
      return resp.json().then(function (body) { return { ok: resp.ok, body: body }; });
    }).then(function (r) {
      result.replaceChildren();
      if (!r.ok) { errorEl.textContent = r.body.error || "failed"; return; }
      result.appendChild(el("h3", "", r.body.path + " on router " + r.body.router));
      result.appendChild(el("pre", "explanation", r.body.text));
      var details = el("details");
      details.appendChild(el("summary", "", "as JSON"));
      details.appendChild(tree(r.body.explanation));
      result.appendChild(details);
    }).catch(function (e) { errorEl.textContent = "request failed: " + e.message; });
  });
})();
