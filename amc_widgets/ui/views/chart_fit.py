"""Charts that follow the width they are given: a hidden widget that redraws them when their box resizes.

The charts are autosized with plotly.js' ``responsive`` config, which redraws on window resizes only. A
chart's box also changes width without one: a tab or card shown (a chart drawn while hidden gets plotly's
700 px default), JupyterLab's sidebar opened, a notebook cell narrowed. This widget watches every chart's
box with a ResizeObserver and then tells plotly.js, through the window resize event it listens to."""

from __future__ import annotations

import anywidget

FIT_CHARTS_JS = """
export default {
  render({ el }) {
    const widths = new WeakMap();
    let frame = 0;
    const redraw = () => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => window.dispatchEvent(new Event("resize")));
    };
    const boxes = new ResizeObserver((entries) => {
      let changed = false;
      for (const entry of entries) {
        const width = Math.round(entry.contentRect.width);
        if (widths.get(entry.target) !== width) { widths.set(entry.target, width); changed = true; }
      }
      if (changed) redraw();
    });
    const watch = () => document.querySelectorAll(".js-plotly-plot").forEach((plot) => {
      const box = plot.parentElement;
      if (box && !widths.has(box)) { widths.set(box, -1); boxes.observe(box); }
    });
    const added = new MutationObserver(watch);
    added.observe(document.body, { childList: true, subtree: true });
    watch();
    el.style.display = "none";
    return () => { boxes.disconnect(); added.disconnect(); };
  },
};
"""


class FitCharts(anywidget.AnyWidget):
    """Shown once per page (the dashboard shows it): redraws every plotly chart whose box changes width."""

    _esm = FIT_CHARTS_JS
