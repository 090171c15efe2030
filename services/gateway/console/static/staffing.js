// The staffing chart: agents required vs staffed per interval, from #staffing-chart (JSON, not executed).
(function () {
  "use strict";
  function draw() {
    var element = document.getElementById("chart-staffing");
    var data = JSON.parse(document.getElementById("staffing-chart").textContent || "{}");
    if (!element || !data.labels || typeof Chart === "undefined") return;
    var chart = new Chart(element, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { type: "line", label: "Required", data: data.required, borderColor: "#b42318", backgroundColor: "#b42318", stepped: "middle" },
          { type: "bar", label: "Staffed", data: data.staffed, backgroundColor: "#1f5fbf" }
        ]
      },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
                 scales: { y: { beginAtZero: true, title: { display: true, text: "agents" } } } }
    });
    element.dataset.chart = "drawn";
    element.dataset.points = String(data.required.length + data.staffed.length);
    return chart;
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
})();
