// Live dashboard: polls /admin/dashboard.json and draws SVG charts and sortable tables.
"use strict";
(function () {
  var POLL_MS = 3000, WINDOW_S = 600, SVG = "http://www.w3.org/2000/svg", INTERVAL_S = 5;
  var routersEl = document.getElementById("routers");
  var views = {};  // router label -> view
  var sorts = {};  // table id -> {key, desc}

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function pct(v) { return v === null || v === undefined ? "\u2013" : (v * 100).toFixed(2) + "%"; }
  function num(v, d) { return v === null || v === undefined ? "\u2013" : v.toFixed(d); }
  function ms(v) { return v === null || v === undefined ? "\u2013" : (v < 10 ? v.toFixed(1) : v.toFixed(0)) + " ms"; }

  function chart(title, names) {
    var box = el("div", { "class": "chart" });
    var head = el("div", { "class": "title" });
    head.appendChild(el("span", {}, title));
    var legend = el("span", { "class": "legend" });
    head.appendChild(legend);
    box.appendChild(head);
    // The y axis: the scale's top, middle and zero, with units, beside the plot.
    var plot = el("div", { "class": "plot" });
    var axis = el("div", { "class": "yaxis" });
    var ticks = [el("span", {}, ""), el("span", {}, ""), el("span", {}, "")];
    ticks.forEach(function (t) { axis.appendChild(t); });
    plot.appendChild(axis);
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 600 100");
    svg.setAttribute("preserveAspectRatio", "none");
    [1, 50, 99].forEach(function (y) {
      var g = document.createElementNS(SVG, "line");
      g.setAttribute("class", "grid"); g.setAttribute("x1", 0); g.setAttribute("x2", 600);
      g.setAttribute("y1", y); g.setAttribute("y2", y);
      g.setAttribute("vector-effect", "non-scaling-stroke");
      svg.appendChild(g);
    });
    var paths = names.map(function (n, i) {
      var p = document.createElementNS(SVG, "path");
      p.setAttribute("class", "s" + i);
      p.setAttribute("d", "");
      svg.appendChild(p);
      legend.appendChild(el("span", { "class": "s" + i }, n));
      return p;
    });
    plot.appendChild(svg);
    box.appendChild(plot);
    var scale = el("div", { "class": "title" });
    box.appendChild(scale);
    return { box: box, paths: paths, legend: legend, scale: scale, ticks: ticks };
  }

  // The smallest 1, 2 or 5 times a power of ten at or above v: a scale with round ticks.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log(v) / Math.LN10)), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  // Draw series (arrays aligned with t) into a chart; null values leave gaps.
  function draw(c, t, series, fixedMax, fmt, now) {
    var max = fixedMax || 0, seen = false;
    series.forEach(function (s) { s.forEach(function (v) { if (v !== null) { seen = true; if (!fixedMax && v > max) max = v; } }); });
    max = fixedMax || niceMax(max);
    // Up to the last 10 minutes; a younger history fills the width (at least a minute).
    var span = Math.min(WINDOW_S, Math.max(60, t.length ? now - t[0] : 0));
    var start = now - span;
    series.forEach(function (s, i) {
      var d = "", pen = false;
      for (var j = 0; j < t.length; j++) {
        var v = s[j];
        if (v === null || v === undefined || t[j] < start) { pen = false; continue; }
        var x = ((t[j] - start) / span) * 600, y = 100 - (v / max) * 98 - 1;
        d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1) + " ";
        if (!pen && (j + 1 >= t.length || s[j + 1] === null)) d += "l0.5 0 ";  // a lone point stays visible
        pen = true;
      }
      c.paths[i].setAttribute("d", d.trim());
      var last = null;
      for (var k = s.length - 1; k >= 0; k--) if (s[k] !== null) { last = s[k]; break; }
      c.legend.children[i].textContent = c.legend.children[i].textContent.split(" ")[0] + " " + fmt(last);
    });
    c.ticks[0].textContent = fmt(max); c.ticks[1].textContent = fmt(max / 2); c.ticks[2].textContent = fmt(0);
    c.scale.textContent = (seen ? "" : "no data \u00b7 ") + "one point per " + INTERVAL_S + " s sample \u00b7 last " + (span >= 120 ? Math.round(span / 60) + " min" : Math.round(span) + " s");
  }

  function count(v) { return v === null || v === undefined ? "\u2013" : String(v); }
  function lb(r) { return r.lb_size === null || r.lb_size === undefined ? "\u2013" : r.lb_available + "/" + r.lb_size; }

  // A column: [row key (also what it sorts by), header, cell text of a row, header tooltip].
  function col(key, head, text, title) { return [key, head, text, title || head]; }
  var NAME = col("name", "name", function (r) { return r.name; });
  var SUCCESS = col("success_rate", "success", function (r) { return pct(r.success_rate); }, "success rate");
  var RPS = col("rps", "rps", function (r) { return num(r.rps, 1); }, "requests per second");
  var LATENCY = [
    col("window_requests", "requests", function (r) { return String(r.window_requests); }, "requests in the window (counters' deltas)"),
    col("p50", "p50", function (r) { return ms(r.p50); }),
    col("p95", "p95", function (r) { return ms(r.p95); }),
    col("p99", "p99", function (r) { return ms(r.p99); })
  ];
  var SERVICE_COLUMNS = [NAME, SUCCESS, RPS,
    col("retries_rps", "retry/s", function (r) { return num(r.retries_rps, 1); }, "retries per second (retries/total)"),
    col("budget_exhausted", "no budget", function (r) { return count(r.budget_exhausted); }, "retries refused by the retry budget (retries/budget_exhausted)")
  ].concat(LATENCY);
  var CLIENT_COLUMNS = [NAME, SUCCESS, RPS,
    col("lb_available", "lb", lb, "load balancer endpoints available/size (loadbalancer/available, loadbalancer/size)"),
    col("removals", "ejected", function (r) { return count(r.removals); }, "endpoints removed by failure accrual (failure_accrual/removals)"),
    col("requeues", "requeued", function (r) { return count(r.requeues); }, "requests re-sent because they never reached a server (retries/requeues)")
  ].concat(LATENCY);

  var ENDPOINT_COLUMNS = [
    col("address", "endpoint", function (r) { return r.address; }, "the endpoint's ip:port"),
    col("state", "state", function (r) { return r.state; }, "ok: in the balancer; ejected: marked dead by failure accrual (probing: its probe is due); draining: gone from discovery, requests still in flight"),
    col("window_requests", "requests", function (r) { return String(r.window_requests); }, "requests sent to it in the window"),
    col("rps", "rps", function (r) { return num(r.rps, 1); }, "requests per second"),
    col("success_rate", "success", function (r) { return pct(r.success_rate); }, "success rate, by the service's response classifier"),
    col("mean_ms", "mean", function (r) { return ms(r.mean_ms); }, "mean latency over the window"),
    col("pending", "pending", function (r) { return String(r.pending); }, "requests in flight")
  ];

  // The endpoints of one client, as a table in a row under it.
  function endpointRow(client, ncols) {
    var tr = el("tr", { "class": "endpoints-row" });
    var td = el("td", { colspan: ncols });
    var tbl = el("table", { "class": "endpoints" });
    var head = el("tr");
    ENDPOINT_COLUMNS.forEach(function (c) { head.appendChild(el("th", { "class": "c-" + c[0], title: c[3] }, c[1])); });
    var thead = el("thead"); thead.appendChild(head); tbl.appendChild(thead);
    var body = el("tbody");
    client.endpoints.forEach(function (e) {
      var row = el("tr", { "class": "state-" + e.state, "data-address": e.address, "data-state": e.state });
      ENDPOINT_COLUMNS.forEach(function (c) { row.appendChild(el("td", { "class": "c-" + c[0] }, c[2](e))); });
      if (e.success_rate !== null && e.success_rate < 0.95) row.cells[4].className += " bad";
      if (e.state !== "ok") row.cells[1].className += " bad";
      body.appendChild(row);
    });
    tbl.appendChild(body);
    td.appendChild(tbl);
    if (client.endpoints_total > client.endpoints.length) {
      td.appendChild(el("p", { "class": "muted" }, (client.endpoints_total - client.endpoints.length) + " more endpoints not shown"));
    }
    tr.appendChild(td);
    return tr;
  }

  function table(kind, label, columns) {
    var wrap = el("div", { "class": "scroll" });
    var id = kind + "-" + label;
    var tbl = el("table", { "class": "data " + kind, id: id });
    var tr = el("tr");
    columns.forEach(function (c) {
      var th = el("th", { "data-key": c[0], "class": "c-" + c[0], title: c[3] }, c[1]);
      th.addEventListener("click", function () {
        var s = sorts[id];
        sorts[id] = { key: c[0], desc: s && s.key === c[0] ? !s.desc : c[0] !== "success_rate" && c[0] !== "name" };
        render(lastData);
      });
      tr.appendChild(th);
    });
    var thead = el("thead"); thead.appendChild(tr); tbl.appendChild(thead);
    tbl.appendChild(el("tbody"));
    wrap.appendChild(tbl);
    return { wrap: wrap, table: tbl, columns: columns };
  }

  function fillTable(t, rows) {
    var id = t.table.id, s = sorts[id] || { key: "success_rate", desc: false };
    rows = rows.slice().sort(function (a, b) {
      var x = a[s.key], y = b[s.key];
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      var r = typeof x === "string" ? x.localeCompare(y) : x - y;
      return s.desc ? -r : r;
    });
    Array.prototype.forEach.call(t.table.tHead.rows[0].cells, function (th) {
      var key = th.getAttribute("data-key");
      th.className = "c-" + key + (key === s.key ? " sorted" + (s.desc ? " desc" : "") : "");
    });
    var body = el("tbody");
    rows.forEach(function (r) {
      var tr = el("tr");
      t.columns.forEach(function (c) { tr.appendChild(el("td", { "class": "c-" + c[0] }, c[2](r))); });
      if (r.success_rate !== null && r.success_rate < 0.95) tr.cells[1].className += " bad";
      // What the figures were computed from, for whoever checks them (the browser test).
      tr.setAttribute("data-name", r.name);
      tr.setAttribute("data-window-success", String(r.window_success));
      tr.setAttribute("data-window-failures", String(r.window_failures));
      body.appendChild(tr);
      if (r.endpoints && r.endpoints.length) body.appendChild(endpointRow(r, t.columns.length));
    });
    if (!rows.length) { var tr0 = el("tr"); tr0.appendChild(el("td", { colspan: t.columns.length, "class": "muted" }, "none yet")); body.appendChild(tr0); }
    t.table.replaceChild(body, t.table.tBodies[0]);
  }

  function view(label) {
    var sec = el("section", { "class": "router", id: "router-" + label });
    sec.appendChild(el("h2", {}, "router " + label));
    sec.appendChild(el("p", { "class": "muted hops" },
      "Each request this router handled counts once here: a request through two routers (outgoing, then the " +
      "destination's incoming) counts once on each, and an app's own calls through the mesh count too " +
      "(one request to hello that calls world: 2 here). Do not add routers together. " +
      "The top line is the sum of the services below."));
    var figures = el("div", { "class": "figures" });
    sec.appendChild(figures);
    var charts = el("div", { "class": "charts" });
    var v = {
      sec: sec, figures: figures,
      success: chart("success rate", ["success"]),
      volume: chart("request volume", ["rps"]),
      latency: chart("latency", ["p50", "p95", "p99"]),
      services: table("services", label, SERVICE_COLUMNS),
      clients: table("clients", label, CLIENT_COLUMNS)
    };
    charts.appendChild(v.success.box); charts.appendChild(v.volume.box); charts.appendChild(v.latency.box);
    sec.appendChild(charts);
    sec.appendChild(el("h3", {}, "services"));
    sec.appendChild(v.services.wrap);
    sec.appendChild(el("h3", {}, "clients, with their endpoints"));
    sec.appendChild(v.clients.wrap);
    return v;
  }

  function figure(label, value, key) {
    var f = el("div", { "class": "figure", "data-key": key });
    f.appendChild(el("b", {}, value));
    f.appendChild(el("span", { "class": "muted" }, label));
    return f;
  }

  var lastData = null;
  function render(data) {
    if (!data) return;
    lastData = data;
    var status = document.getElementById("status");
    if (status) status.textContent = data.routers.length ? "" : "no routers yet";
    INTERVAL_S = data.interval_s || INTERVAL_S;
    var win = document.getElementById("window");
    if (win) win.textContent = "Figures and tables: the last " + data.window_s + " s (less until the dashboard has sampled that long), " +
      "the same window for a router's top line and its rows. Charts: one point per " + data.interval_s + " s sample, last 10 min.";
    data.routers.forEach(function (r) {
      var v = views[r.label];
      if (!v) { v = views[r.label] = view(r.label); routersEl.appendChild(v.sec); }
      var c = r.current;
      // The window these figures really cover: shorter while the history is younger.
      var w = " (" + Math.round(c.window_s || data.window_s) + " s)";
      v.figures.replaceChildren(
        figure("success rate" + w, pct(c.success_rate), "success"), figure("requests/s" + w, num(c.rps, 1), "rps"),
        figure("p50" + w, ms(c.p50), "p50"), figure("p99" + w, ms(c.p99), "p99"),
        figure("requests" + w, String(c.window_requests), "requests"));
      var s = r.series;
      draw(v.success, s.t, [s.success_rate.map(function (x) { return x === null ? null : x * 100; })], 100, function (x) { return x === null ? "\u2013" : x.toFixed(1) + "%"; }, data.now);
      draw(v.volume, s.t, [s.rps], 0, function (x) { return num(x, 1) + "/s"; }, data.now);
      draw(v.latency, s.t, [s.p50, s.p95, s.p99], 0, ms, data.now);
      fillTable(v.services, r.services);
      fillTable(v.clients, r.clients);
    });
  }

  function poll() {
    fetch("/admin/dashboard.json", { cache: "no-store" })
      .then(function (resp) { if (!resp.ok) throw new Error("HTTP " + resp.status); return resp.json(); })
      .then(render)
      .catch(function (e) {
        var status = document.getElementById("status");
        if (status) status.textContent = "cannot reach the admin server: " + e.message;
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
