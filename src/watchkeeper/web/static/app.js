/* Watchkeeper pages: history graphs (uPlot) and error flashes for htmx actions.
 * No inline script anywhere (the pages' CSP is default-src 'self'); this file and the
 * vendored htmx and uPlot are all the JavaScript there is. */
(function () {
  "use strict";

  var RANGES = { "6h": 6 * 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "1y": 365 * 86400 };
  var DAY = 86400;
  /* The pages show every time in UTC, 24-hour, as 2026-12-03 11:05:38Z; so do the graphs,
   * whatever the browser's time zone. uPlot's axis format table: tick increment, then the
   * label, then what to add when the year, month, day, hour, minute or second changes. */
  var UTC_AXIS = [
    [365 * DAY, "{YYYY}", null, null, null, null, null, null, 1],
    [28 * DAY, "{YYYY}-{MM}", "\n{YYYY}", null, null, null, null, null, 1],
    [DAY, "{MM}-{DD}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
    [60, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
    [1, "{HH}:{mm}:{ss}", "\n{YYYY}-{MM}-{DD} {HH}:{mm}", null, "\n{MM}-{DD} {HH}:{mm}", null, null, null, 1],
  ];
  function utc(seconds) { return window.uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"); }
  var plots = [];

  function flash(message, error) {
    var box = document.getElementById("flash");
    if (!box) return;
    var p = document.createElement("p");
    p.className = "flash" + (error ? " error" : "");
    p.setAttribute("role", error ? "alert" : "status");
    p.textContent = message;
    box.replaceChildren(p);
  }

  /* htmx does not swap 401/403/404/5xx answers: say what went wrong instead. */
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = xhr.responseText || "";
    try {
      var body = JSON.parse(text);
      if (body && body.detail) text = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (ignored) { /* not JSON: keep the text */ }
    flash("Refused (" + xhr.status + "): " + text.slice(0, 300), true);
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The manager did not answer: is it running?", true);
  });

  function number(value) {
    if (value === null || value === undefined) return "";
    var abs = Math.abs(value);
    if (abs !== 0 && (abs >= 1e6 || abs < 1e-3)) return value.toExponential(2);
    return String(Math.round(value * 1000) / 1000);
  }

  /* The x series: its legend value is the hovered point's time, as the tables write it. */
  var TIME = { label: "time", value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}Z" };

  function seriesFor(result, uom) {
    var unit = uom ? " " + uom : "";
    var fmt = function (u, v) { return v === null || v === undefined ? "-" : number(v) + unit; };
    if (result.tier === "raw") {
      return {
        series: [TIME, { label: "value", stroke: "#2f80d1", width: 1.5, value: fmt,
                       points: { show: result.points.length < 60 } }],
        bands: [],
        data: [result.points.map(function (p) { return p.at; }),
               result.points.map(function (p) { return p.avg; })],
      };
    }
    return {
      series: [
        TIME,
        { label: "min", stroke: "rgba(47,128,209,0.35)", width: 1, value: fmt },
        { label: "avg", stroke: "#2f80d1", width: 1.5, value: fmt,
          points: { show: result.points.length < 60 } },
        { label: "max", stroke: "rgba(47,128,209,0.35)", width: 1, value: fmt },
      ],
      bands: [{ series: [3, 1], fill: "rgba(47,128,209,0.12)" }],
      data: [result.points.map(function (p) { return p.at; }),
             result.points.map(function (p) { return p.min; }),
             result.points.map(function (p) { return p.avg; }),
             result.points.map(function (p) { return p.max; })],
    };
  }

  function draw(figure, range) {
    var plot = figure.querySelector(".plot");
    var end = Date.now() / 1000;
    var start = end - (RANGES[range] || RANGES["1d"]);
    var url = figure.dataset.src + "?start=" + start.toFixed(0) + "&end=" + end.toFixed(0);
    figure.dataset.state = "loading";
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (result) {
        var tier = figure.querySelector(".tier");
        if (tier) tier.textContent = result.tier === "raw" ? "raw points" : result.tier + " buckets (min/avg/max)";
        var made = seriesFor(result, figure.dataset.uom);
        var old = plots.filter(function (p) { return p.figure === figure; })[0];
        if (old) { old.chart.destroy(); plots.splice(plots.indexOf(old), 1); }
        plot.replaceChildren();
        figure.dataset.points = String(result.points.length);
        figure.dataset.tier = result.tier;
        if (!result.points.length) { figure.dataset.state = "empty"; return; }
        var chart = new window.uPlot({
          width: Math.max(280, plot.clientWidth || figure.clientWidth - 12),
          height: 200,
          series: made.series,
          bands: made.bands,
          tzDate: utc,
          scales: { x: { time: true, min: start, max: end } },
          axes: [{ values: UTC_AXIS, label: "UTC", labelSize: 20 },
                 { size: 60, values: function (u, vals) { return vals.map(number); } }],
          legend: { live: true },
          cursor: { drag: { x: true, y: false } },
        }, made.data, plot);
        plots.push({ figure: figure, chart: chart });
        figure.dataset.state = "drawn";
      })
      .catch(function () { figure.dataset.state = "error"; figure.dataset.points = "0"; });
  }

  function drawAll(range) {
    var figures = document.querySelectorAll("figure.graph[data-src]");
    if (!figures.length || !window.uPlot) return;
    figures.forEach(function (figure) { draw(figure, range); });
  }

  function setupGraphs() {
    var box = document.querySelector(".graphs");
    if (!box) return;
    var range = box.dataset.range || "1d";
    document.querySelectorAll(".ranges a[data-range]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        range = link.dataset.range;
        box.dataset.range = range;
        document.querySelectorAll(".ranges a").forEach(function (other) {
          other.classList.toggle("current", other === link);
        });
        history.replaceState(null, "", link.getAttribute("href"));
        drawAll(range);
      });
    });
    var resizing = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizing);
      resizing = setTimeout(function () {
        plots.forEach(function (p) {
          var plot = p.figure.querySelector(".plot");
          p.chart.setSize({ width: Math.max(280, plot.clientWidth), height: 200 });
        });
      }, 150);
    });
    drawAll(range);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setupGraphs);
  } else {
    setupGraphs();
  }
})();
