// Charts with the vendored Chart.js (window.Chart, loaded by index.html before the app).

import { h } from './dom.js';
import { locale } from './i18n.js';

// Colour-blind-safe palette (Okabe–Ito), darkened a little for contrast on white.
export const PALETTE = ['#0B5CAD', '#C75B00', '#00806A', '#B8316F', '#6A4C93', '#8A6D00', '#4D4D4D', '#3A8FD6'];
const GRID = '#E3E6EA';
const TEXT = '#33383D';

let charts = [];

function chartLib() {
  return window.Chart ?? null;
}

/** Destroys every chart made since the last call (before a page re-renders). */
export function destroyCharts() {
  for (const c of charts) c.destroy();
  charts = [];
}

/** A canvas inside a fixed-height box (Chart.js sizes itself to the box). */
export function chartBox(labelText, { height = 260 } = {}) {
  const canvas = h('canvas', { role: 'img', 'aria-label': labelText });
  const box = h('div', { class: 'chart-box', style: `height:${height}px` }, canvas);
  return { box, canvas };
}

function baseOptions({ yTitle, percent = false, yMin, yMax, legend = true, integer = false }) {
  const nf = new Intl.NumberFormat(locale(), percent
    ? { style: 'percent', maximumFractionDigits: 1 }
    : { maximumFractionDigits: integer ? 0 : 1 });
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    locale: locale(),
    interaction: { mode: 'index', intersect: false },
    plugins: {
      legend: { display: legend, position: 'bottom', labels: { color: TEXT, boxWidth: 14, usePointStyle: false } },
      tooltip: {
        callbacks: {
          label: (ctx) => `${ctx.dataset.label}: ${ctx.parsed.y === null ? '–' : nf.format(ctx.parsed.y)}`,
        },
      },
    },
    scales: {
      x: { grid: { color: GRID }, ticks: { color: TEXT } },
      y: {
        min: yMin,
        max: yMax,
        beginAtZero: yMin === undefined,
        grid: { color: GRID },
        ticks: { color: TEXT, precision: integer ? 0 : undefined, callback: (v) => nf.format(v) },
        title: yTitle ? { display: true, text: yTitle, color: TEXT } : undefined,
      },
    },
  };
}

/**
 * datasets: [{label, data, color?, dashed?, fill?, type?}]. Returns the Chart, or null when the
 * library is missing (the tables still carry every figure).
 */
export function makeChart(canvas, { type = 'line', labels, datasets, ...opts }) {
  const Chart = chartLib();
  if (!Chart) return null;
  const ds = datasets.map((d, i) => {
    const color = d.color ?? PALETTE[i % PALETTE.length];
    return {
      type: d.type,
      label: d.label,
      data: d.data,
      borderColor: color,
      backgroundColor: d.type === 'bar' || (type === 'bar' && !d.type) ? `${color}CC` : color,
      borderWidth: d.dashed ? 1.5 : 2,
      borderDash: d.dashed ? [6, 4] : undefined,
      pointRadius: d.dashed ? 0 : 3,
      pointHoverRadius: 5,
      spanGaps: false,
      tension: 0,
      fill: false,
    };
  });
  const chart = new Chart(canvas, { type, data: { labels, datasets: ds }, options: baseOptions(opts) });
  charts.push(chart);
  return chart;
}

/**
 * Draws the given charts onto one white PNG with their titles (a figure for a report) and
 * starts the download.
 */
export function downloadPng(items, { title, filename }) {
  const scale = 2;
  const cols = items.length > 1 ? 2 : 1;
  const cellW = 560;
  const cellH = 300;
  const titleH = title ? 44 : 0;
  const rows = Math.ceil(items.length / cols);
  const canvas = document.createElement('canvas');
  canvas.width = (cols * cellW + 16 * (cols + 1)) * scale;
  canvas.height = (titleH + rows * (cellH + 34) + 16) * scale;
  const g = canvas.getContext('2d');
  g.scale(scale, scale);
  g.fillStyle = '#FFFFFF';
  g.fillRect(0, 0, canvas.width, canvas.height);
  const font = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  g.fillStyle = '#1D2329';
  if (title) {
    g.font = `600 18px ${font}`;
    g.fillText(title, 16, 30);
  }
  items.forEach(({ chart, title: itemTitle }, i) => {
    const x = 16 + (i % cols) * (cellW + 16);
    const y = titleH + Math.floor(i / cols) * (cellH + 34) + 8;
    g.fillStyle = '#1D2329';
    g.font = `600 14px ${font}`;
    g.fillText(itemTitle ?? '', x, y + 16);
    if (chart && chart.canvas.width > 0 && chart.canvas.height > 0) {
      const ratio = Math.min(cellW / chart.canvas.width, cellH / chart.canvas.height);
      g.drawImage(chart.canvas, x, y + 24, chart.canvas.width * ratio, chart.canvas.height * ratio);
    }
  });
  const a = document.createElement('a');
  a.href = canvas.toDataURL('image/png');
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
}
