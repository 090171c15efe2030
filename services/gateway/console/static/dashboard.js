// The dashboard's charts: Chart.js draws the numbers the server put into #dashboard-charts (JSON,
// not executed); the same numbers stand in the tables beside each chart. Nothing here builds HTML.
(function () {
  "use strict";

  var COLOURS = ["#1f5fbf", "#1b7a3a", "#b42318", "#8a5a00", "#6b3fa0", "#0f7c86"];

  function canvas(id) {
    return document.getElementById(id);
  }

  // Marks a drawn chart, so that the page (and a test) can tell a chart from an empty canvas.
  function drawn(element, chart) {
    element.dataset.chart = "drawn";
    element.dataset.points = String(chart.data.datasets.reduce(function (sum, set) { return sum + set.data.length; }, 0));
  }

  function make(id, config) {
    var element = canvas(id);
    if (!element) return;
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    drawn(element, new Chart(element, config));
  }

  function hours(data) {
    var names = data.names || {};
    make("chart-hours", {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { type: "line", label: names.offered || "Offered", data: data.offered, borderColor: COLOURS[0], backgroundColor: COLOURS[0] },
          { label: names.answered || "Answered", data: data.answered, backgroundColor: COLOURS[1] },
          { label: names.abandoned || "Abandoned", data: data.abandoned, backgroundColor: COLOURS[2] }
        ]
      },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
  }

  function horizontal(id, labels, values, title) {
    make(id, {
      type: "bar",
      data: { labels: labels, datasets: [{ label: title, data: values, backgroundColor: COLOURS[0] }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
  }

  // Small multiples: one chart per question, all on the 1-10 scale, so each line reads on its own.
  function trend(data) {
    data.series.forEach(function (series, index) {
      var colour = COLOURS[index % COLOURS.length];
      make("chart-trend-" + index, {
        type: "line",
        data: { labels: data.labels, datasets: [{ label: series.label, data: series.means, borderColor: colour,
                                                   backgroundColor: colour, spanGaps: false }] },
        options: { plugins: { legend: { display: false } },
                   scales: { y: { min: 1, max: 10, title: { display: true, text: data.axis || "mean (1–10)" } } } }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var source = document.getElementById("dashboard-charts");
    if (!source || !window.Chart) return;
    var data = JSON.parse(source.textContent);
    if (data.hours) hours(data.hours);
    if (data.reasons) horizontal("chart-reasons", data.reasons.labels, data.reasons.calls, data.reasons.name || "Calls");
    if (data.tickets) horizontal("chart-tickets", data.tickets.labels, data.tickets.opened, data.tickets.name || "Opened");
    if (data.trend) trend(data.trend);
  });
})();
