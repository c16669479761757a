// slipway console: progressive enhancement only (every page works without it).
// Live parts read server-sent events and put what they bring in as text, never markup.
"use strict";
(function () {
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = d.toLocaleString(); el.title = el.getAttribute("datetime"); }
    });
  }

  function timeEl(iso) {
    var t = document.createElement("time");
    t.setAttribute("datetime", iso);
    t.textContent = iso;
    localTimes({ querySelectorAll: function () { return [t]; } });
    return t;
  }

  function setStatus(el, status, tone) {
    if (!el) return;
    el.textContent = status;
    el.className = "status " + tone;
  }

  function appendLine(pre, data) {
    var line = document.createElement("span");
    line.className = "line";
    if (data.t) { line.appendChild(timeEl(data.t)); line.appendChild(document.createTextNode(" ")); }
    line.appendChild(document.createTextNode(data.m + "\n"));
    var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.appendChild(line);
    if (atEnd) pre.scrollTop = pre.scrollHeight;
    return line;
  }

  function statuses() {
    var el = document.querySelector("[data-live]");
    if (!el || !window.EventSource) return;
    var source = new EventSource(el.getAttribute("data-live"));
    source.addEventListener("service", function (e) {
      var s = JSON.parse(e.data);
      document.querySelectorAll('[data-status-of="' + s.id + '"]').forEach(function (n) { setStatus(n, s.status, s.tone); });
      document.querySelectorAll('[data-instances-of="' + s.id + '"]').forEach(function (n) { n.textContent = String(s.instances); });
      document.querySelectorAll('[data-revision-of="' + s.id + '"]').forEach(function (n) { n.textContent = s.revision || "—"; });
      document.querySelectorAll('[data-updated-of="' + s.id + '"]').forEach(function (n) {
        n.textContent = ""; if (s.updated) n.appendChild(timeEl(s.updated));
      });
    });
    source.addEventListener("end", function () { source.close(); });
  }

  function operationLog() {
    var pre = document.querySelector("pre[data-stream]");
    if (!pre || !window.EventSource) return;
    var source = new EventSource(pre.getAttribute("data-stream"));
    source.addEventListener("line", function (e) { appendLine(pre, JSON.parse(e.data)); });
    source.addEventListener("status", function (e) {
      var s = JSON.parse(e.data);
      setStatus(document.getElementById("op-status"), s.status, s.tone);
    });
    source.addEventListener("done", function (e) {
      var s = JSON.parse(e.data);
      var tone = s.service === "RUNNING" ? "ok" : (s.service.indexOf("FAIL") >= 0 ? "bad" : "idle");
      setStatus(document.getElementById("service-status"), s.service, tone);
      pre.setAttribute("data-done", "true");
      source.close();
    });
    source.addEventListener("end", function () { source.close(); });
  }

  function appLogs() {
    var pre = document.querySelector("pre[data-follow]");
    if (!pre) return;
    var search = document.getElementById("log-q");
    var follow = document.getElementById("log-follow");
    var source = null;
    function matches(line) {
      var q = search.value.toLowerCase();
      line.hidden = q !== "" && line.textContent.toLowerCase().indexOf(q) < 0;
    }
    function filter() { pre.querySelectorAll(".line").forEach(matches); }
    function start() {
      if (source || !window.EventSource) return;
      source = new EventSource(pre.getAttribute("data-follow"));
      source.addEventListener("line", function (e) { matches(appendLine(pre, JSON.parse(e.data))); });
      source.addEventListener("end", stop);
    }
    function stop() { if (source) { source.close(); source = null; } }
    search.addEventListener("input", filter);
    search.form.addEventListener("submit", function (e) { e.preventDefault(); filter(); });
    follow.addEventListener("change", function () { if (follow.checked) start(); else stop(); });
    filter();
    if (follow.checked) start();
  }

  function charts() {
    var box = document.querySelector("[data-metrics]");
    if (!box || !window.uPlot) return;
    var plots = {};
    var palette = ["#3b82f6", "#16a34a", "#d97706", "#dc2626"];
    var label = "hour";
    function draw(cols) {
      var total = (cols.requests || []).reduce(function (a, b) { return a + b; }, 0);
      box.setAttribute("data-total", String(total));
      box.setAttribute("data-shown", box.getAttribute("data-minutes"));
      document.getElementById("metrics-total").textContent = total + " requests in the last " + label;
      box.querySelectorAll(".chart").forEach(function (el) {
        var names = el.getAttribute("data-series").split(",");
        var data = [cols.minute || []].concat(names.map(function (n) { return cols[n] || []; }));
        if (plots[el.id]) { plots[el.id].setData(data); return; }
        var width = Math.max(260, Math.min(el.clientWidth || 600, 900));
        plots[el.id] = new uPlot({
          width: width, height: 180,
          series: [{}].concat(names.map(function (n, i) { return { label: n, stroke: palette[i % palette.length], width: 2 }; })),
          axes: [{ stroke: "currentColor" }, { stroke: "currentColor" }]
        }, data, el);
      });
    }
    function load() {
      var url = box.getAttribute("data-metrics") + "?minutes=" + box.getAttribute("data-minutes");
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (cols) { if (cols) draw(cols); });
    }
    document.querySelectorAll(".ranges button[data-minutes]").forEach(function (button) {
      button.addEventListener("click", function () {
        document.querySelectorAll(".ranges button").forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
        button.setAttribute("aria-pressed", "true");
        box.setAttribute("data-minutes", button.getAttribute("data-minutes"));
        label = button.getAttribute("data-label");
        load();
      });
    });
    load();
    setInterval(load, 10000);
  }

  function sourceKind() {
    var select = document.getElementById("f-source_kind");
    if (!select) return;
    function show() {
      var repo = select.value === "repository";
      document.querySelectorAll(".when-image").forEach(function (n) { n.hidden = repo; });
      document.querySelectorAll(".when-repository").forEach(function (n) { n.hidden = !repo; });
    }
    select.addEventListener("change", show);
    show();
  }

  function typedConfirmation() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      var input = form.querySelector('input[name="confirm"]');
      var button = form.querySelector('button[type="submit"]');
      function check() { button.disabled = input.value !== form.getAttribute("data-confirm"); }
      input.addEventListener("input", check);
      check();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    statuses(); operationLog(); appLogs(); charts(); sourceKind(); typedConfirmation();
  });
  document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
})();
