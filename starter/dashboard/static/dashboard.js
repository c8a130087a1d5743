// Draws every <canvas data-chart="id"> from the JSON in <script id="id">, with the vendored Chart.js.
"use strict";
(function () {
  const colours = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2"];
  function draw(canvas) {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") return;
    const spec = JSON.parse(source.textContent);
    const datasets = spec.datasets.map(function (set, i) {
      const colour = colours[i % colours.length];
      return Object.assign({}, set, {
        backgroundColor: colour, borderColor: colour, spanGaps: false, tension: 0.2, pointRadius: 2,
      });
    });
    const unit = spec.percent ? " %" : "";
    canvas.chart = new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { callback: function (v) { return v + unit; } } } },
        plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + c.formattedValue + unit; } } } },
      },
    });
    canvas.dataset.drawn = "true";
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
