// The curator's map: a canvas that draws a density image, the points the server sent and the clusters' labels,
// with pan, zoom, hover, click, box and lasso. It is a Streamlit custom component (v2) so that a new veto only
// changes what is drawn: the canvas, its view and its listeners stay, where a plotly chart is mounted afresh on
// any change of its figure (0.4-0.7 s of a GPU-less browser's main thread, bench/browser_scale.py).
//
// Data (app/map_spec.py builds it): extent [x0, x1, y0, y1]; points as base64 arrays (x, y: uint16 steps of
// the extent; row, cluster: int32; color: uint16 index into palette; value: float32 or absent); names
// {cluster: label}; snippets (one per point, or absent); labels [{x, y, text, vetoed}]; highlight; legend.
// Every dataset text is drawn with fillText or set as textContent, never parsed as HTML.
// Triggers back to Python: "click" {row, cluster} and "select" {box: [{x, y}], lasso: [{x, y}]}.

const HEIGHT = 520;
const PICK_PX = 8; // a click or hover takes the nearest point within this many pixels
const states = new WeakMap();

function decode(b64, Type) {
  if (!b64) return null;
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Type(bytes.buffer);
}

function setPoints(state, data) {
  const p = data.points;
  const [x0, x1, y0, y1] = data.extent;
  const qx = decode(p.x, Uint16Array), qy = decode(p.y, Uint16Array);
  const n = qx ? qx.length : 0;
  const x = new Float64Array(n), y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = x0 + (qx[i] / 65535) * (x1 - x0);
    y[i] = y0 + (qy[i] / 65535) * (y1 - y0);
  }
  state.points = {
    n, x, y,
    row: decode(p.row, Int32Array),
    cluster: decode(p.cluster, Int32Array),
    color: decode(p.color, Uint16Array),
    value: decode(p.value, Float32Array),
  };
}

function setImage(state, uri) {
  if (uri === state.imageUri) return;
  state.imageUri = uri;
  state.root.dataset.image = uri ? "loading" : "none";
  if (!uri) { state.image = null; return; }
  const image = new Image();
  image.onload = () => {
    if (state.imageUri !== uri) return;
    state.image = image;
    draw(state);
    state.root.dataset.image = "drawn";
  };
  image.src = uri; // the old image stays drawn until the new one has loaded: no flicker on a veto
}

function toScreen(state, x, y) {
  const v = state.view;
  return [((x - v[0]) / (v[1] - v[0])) * state.width, ((v[3] - y) / (v[3] - v[2])) * state.height];
}

function toData(state, sx, sy) {
  const v = state.view;
  return [v[0] + (sx / state.width) * (v[1] - v[0]), v[3] - (sy / state.height) * (v[3] - v[2])];
}

function draw(state) {
  const { ctx, canvas, data } = state;
  if (!data) return;
  const ratio = window.devicePixelRatio || 1;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const [x0, x1, y0, y1] = data.extent;
  if (state.image) {
    const [ax, ay] = toScreen(state, x0, y1), [bx, by] = toScreen(state, x1, y0);
    // unsmoothed while a cell is a few pixels (a vetoed cell stays grey, not blended into its neighbours);
    // smoothed once zoomed in, where cells would otherwise show as blocks
    ctx.imageSmoothingEnabled = (bx - ax) / state.image.width > 3;
    ctx.globalAlpha = data.image_alpha ?? 1;
    ctx.drawImage(state.image, ax, ay, bx - ax, by - ay);
    ctx.globalAlpha = 1;
  }
  drawPoints(state);
  drawLabels(state);
  drawShape(state);
}

function drawPoints(state) {
  const { ctx, data, points } = state;
  if (!points) return;
  const palette = data.palette, size = data.point_size || 4, half = size / 2;
  const highlight = data.highlight;
  ctx.globalAlpha = data.point_alpha || 0.85;
  for (let i = 0; i < points.n; i++) {
    const [sx, sy] = toScreen(state, points.x[i], points.y[i]);
    if (sx < -size || sy < -size || sx > state.width + size || sy > state.height + size) continue;
    ctx.fillStyle = palette[points.color ? points.color[i] : 0];
    ctx.fillRect(sx - half, sy - half, size, size);
  }
  ctx.globalAlpha = 1;
  if (highlight === null || highlight === undefined) return;
  ctx.strokeStyle = "#111";
  ctx.lineWidth = 1.5;
  for (let i = 0; i < points.n; i++) {
    if (points.cluster[i] !== highlight) continue;
    const [sx, sy] = toScreen(state, points.x[i], points.y[i]);
    ctx.fillStyle = palette[points.color ? points.color[i] : 0];
    ctx.beginPath();
    ctx.arc(sx, sy, size, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
}

function drawLabels(state) {
  // The largest clusters first; a label that would overlap one already written is left out, so the map stays
  // readable when zoomed out and shows more labels as the curator zooms in.
  const { ctx, data } = state;
  ctx.font = "12px sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  const placed = [];
  for (const label of data.labels || []) {
    const [px, cy] = toScreen(state, label.x, label.y);
    const py = cy - 14; // just above the cluster's middle, so the label does not hide its densest points
    if (px < 0 || px > state.width || py < 0 || py > state.height) continue;
    const w = ctx.measureText(label.text).width + 8, h = 16;
    // a label near an edge is moved inside the map rather than cut
    const sx = Math.min(Math.max(px, w / 2 + 1), state.width - w / 2 - 1);
    const sy = Math.min(Math.max(py, h / 2 + 1), state.height - h / 2 - 1);
    const box = [sx - w / 2, sy - h / 2, sx + w / 2, sy + h / 2];
    if (placed.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) continue;
    placed.push(box);
    ctx.fillStyle = "rgba(255,255,255,0.7)";
    ctx.fillRect(box[0], box[1], w, h);
    ctx.fillStyle = label.vetoed ? "#8a8a8a" : "#1b1b1b";
    ctx.fillText(label.text, sx, sy + 0.5);
  }
  state.labelsDrawn = placed.length;
}

function drawShape(state) {
  const shape = state.shape;
  if (!shape || shape.length < 2) return;
  const { ctx } = state;
  ctx.strokeStyle = "#1f5fbf";
  ctx.fillStyle = "rgba(31,95,191,0.12)";
  ctx.lineWidth = 1.5;
  ctx.setLineDash([5, 3]);
  ctx.beginPath();
  if (state.mode === "box") {
    const [a, b] = [shape[0], shape[shape.length - 1]];
    ctx.rect(a[0], a[1], b[0] - a[0], b[1] - a[1]);
  } else {
    ctx.moveTo(shape[0][0], shape[0][1]);
    for (const [sx, sy] of shape.slice(1)) ctx.lineTo(sx, sy);
    ctx.closePath();
  }
  ctx.fill();
  ctx.stroke();
  ctx.setLineDash([]);
}

function nearest(state, sx, sy) {
  const points = state.points;
  if (!points) return -1;
  let best = -1, bestD = PICK_PX * PICK_PX;
  for (let i = 0; i < points.n; i++) {
    const [px, py] = toScreen(state, points.x[i], points.y[i]);
    const d = (px - sx) * (px - sx) + (py - sy) * (py - sy);
    if (d <= bestD) { best = i; bestD = d; }
  }
  return best;
}

function viewportPoints(state) {
  const box = state.canvas.getBoundingClientRect(), points = state.points, out = [];
  for (let i = 0; i < points.n; i++) {
    const [sx, sy] = toScreen(state, points.x[i], points.y[i]);
    if (sx >= 0 && sy >= 0 && sx <= state.width && sy <= state.height) {
      out.push({ x: box.left + sx, y: box.top + sy, row: points.row[i], cluster: points.cluster[i] });
    }
  }
  return out;
}

function tipText(state, i) {
  const { data, points } = state;
  const cluster = points.cluster[i];
  const name = (data.names || {})[cluster];
  const lines = [`cluster ${cluster}${name ? ": " + name : ""}${data.vetoed_color === points.color?.[i] ? " (vetoed)" : ""}`];
  if (points.value && data.value_name) {
    const v = points.value[i];
    lines.push(Number.isNaN(v) ? `no ${data.value_name}` : `${data.value_name} ${v.toFixed(4)}`);
  }
  if (data.snippets) lines.push(data.snippets[i]);
  lines.push(`row ${points.row[i]} · click to read it`);
  return lines.join("\n");
}

function showTip(state, sx, sy) {
  const i = nearest(state, sx, sy);
  const tip = state.tip;
  if (i < 0) { tip.style.display = "none"; state.hovered = -1; return; }
  state.hovered = i;
  tip.textContent = tipText(state, i);
  tip.style.display = "block";
  tip.style.left = `${Math.min(sx + 12, state.width - 260)}px`;
  tip.style.top = `${sy + 12}px`;
}

function setMode(state, mode) {
  state.mode = mode;
  for (const button of state.root.querySelectorAll("button[data-mode]")) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
  }
  state.canvas.style.cursor = mode === "pan" ? "grab" : "crosshair";
}

function zoomTo(state, cluster) {
  // the view around a cluster's drawn points (the middle 96 % of them, so a few strays do not widen it),
  // never closer than a twentieth of the map
  const { points, data } = state, xs = [], ys = [];
  for (let i = 0; i < points.n; i++) {
    if (points.cluster[i] === cluster) { xs.push(points.x[i]); ys.push(points.y[i]); }
  }
  if (!xs.length) return;
  xs.sort((a, b) => a - b);
  ys.sort((a, b) => a - b);
  const at = (v, q) => v[Math.min(v.length - 1, Math.floor(q * v.length))];
  const [x0, x1, y0, y1] = data.extent;
  const cx = (at(xs, 0.02) + at(xs, 0.98)) / 2, cy = (at(ys, 0.02) + at(ys, 0.98)) / 2;
  const w = Math.max((at(xs, 0.98) - at(xs, 0.02)) * 1.6, (x1 - x0) / 20) / 2;
  const h = Math.max((at(ys, 0.98) - at(ys, 0.02)) * 1.6, (y1 - y0) / 20) / 2;
  state.view = [cx - w, cx + w, cy - h, cy + h];
}

function resetView(state) {
  state.view = state.data ? [...state.data.extent] : [0, 1, 0, 1];
  draw(state);
}

function sendSelection(state) {
  const shape = state.shape.map(([sx, sy]) => toData(state, sx, sy));
  const xs = shape.map((p) => p[0]), ys = shape.map((p) => p[1]);
  if (state.mode === "box") {
    const a = shape[0], b = shape[shape.length - 1];
    state.setTriggerValue("select", { box: [{ x: [a[0], b[0]], y: [a[1], b[1]] }], lasso: [] });
  } else if (shape.length >= 3) {
    state.setTriggerValue("select", { box: [], lasso: [{ x: xs, y: ys }] });
  }
}

function listen(state) {
  // returns what removes the window's listeners when Streamlit unmounts the map (a page switch)
  const { canvas } = state;
  let down = null; // where the mouse went down, in canvas pixels, and the view then
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  };
  canvas.addEventListener("mousedown", (event) => {
    const [sx, sy] = at(event);
    down = { sx, sy, view: [...state.view], moved: false };
    if (state.mode !== "pan") state.shape = [[sx, sy]];
    if (state.mode === "pan") canvas.style.cursor = "grabbing";
  });
  const onMove = (event) => {
    const [sx, sy] = at(event);
    if (!down) {
      if (sx >= 0 && sy >= 0 && sx <= state.width && sy <= state.height) showTip(state, sx, sy);
      else state.tip.style.display = "none";
      return;
    }
    if (Math.abs(sx - down.sx) + Math.abs(sy - down.sy) > 3) down.moved = true;
    state.tip.style.display = "none";
    if (state.mode === "pan") {
      const v = down.view, dx = ((sx - down.sx) / state.width) * (v[1] - v[0]);
      const dy = ((sy - down.sy) / state.height) * (v[3] - v[2]);
      state.view = [v[0] - dx, v[1] - dx, v[2] + dy, v[3] + dy];
    } else if (state.mode === "box") {
      state.shape = [state.shape[0], [sx, sy]];
    } else {
      state.shape.push([sx, sy]);
    }
    if (!state.frame) state.frame = requestAnimationFrame(() => { state.frame = 0; draw(state); });
  };
  const onUp = (event) => {
    if (!down) return;
    const [sx, sy] = at(event);
    const { moved } = down;
    down = null;
    if (state.mode === "pan") {
      canvas.style.cursor = "grab";
      if (!moved) {
        const i = nearest(state, sx, sy);
        if (i >= 0) state.setTriggerValue("click", { row: state.points.row[i], cluster: state.points.cluster[i] });
      }
      return;
    }
    if (moved) sendSelection(state);
    state.shape = null;
    draw(state);
  };
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const [sx, sy] = at(event);
    const [cx, cy] = toData(state, sx, sy);
    const f = Math.exp(event.deltaY * 0.0015), v = state.view;
    state.view = [cx - (cx - v[0]) * f, cx + (v[1] - cx) * f, cy - (cy - v[2]) * f, cy + (v[3] - cy) * f];
    draw(state);
  }, { passive: false });
  canvas.addEventListener("dblclick", () => resetView(state));
  canvas.addEventListener("mouseleave", () => { state.tip.style.display = "none"; });
  for (const button of state.root.querySelectorAll("button[data-mode]")) {
    button.addEventListener("click", () => setMode(state, button.dataset.mode));
  }
  state.root.querySelector("button[data-action=reset]").addEventListener("click", () => resetView(state));
  const observer = new ResizeObserver(() => resize(state));
  observer.observe(state.root);
  return () => {
    window.removeEventListener("mousemove", onMove);
    window.removeEventListener("mouseup", onUp);
    observer.disconnect();
  };
}

function resize(state) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(200, state.root.clientWidth - 2); // the canvas's 1-pixel border on each side
  if (width === state.width && state.canvas.height === Math.round(HEIGHT * ratio)) return;
  state.width = width;
  state.height = HEIGHT;
  state.canvas.width = Math.round(width * ratio);
  state.canvas.height = Math.round(HEIGHT * ratio);
  state.canvas.style.width = `${width}px`;
  state.canvas.style.height = `${HEIGHT}px`;
  draw(state);
}

function setLegend(state) {
  const legend = state.root.querySelector(".legend");
  const spec = state.data.legend;
  legend.replaceChildren();
  if (!spec) return;
  const title = document.createElement("span");
  title.textContent = spec.title;
  legend.append(title);
  if (spec.colors) {
    const low = document.createElement("span"), bar = document.createElement("span");
    const high = document.createElement("span");
    low.textContent = spec.low;
    high.textContent = spec.high;
    bar.className = "ramp";
    bar.style.background = `linear-gradient(to right, ${spec.colors.join(", ")})`;
    legend.append(low, bar, high);
  }
  for (const [color, text] of spec.swatches || []) {
    const swatch = document.createElement("span"), name = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    name.textContent = text;
    legend.append(swatch, name);
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let state = states.get(parentElement);
  if (!state) {
    const root = parentElement.querySelector(".curate-map");
    const canvas = root.querySelector("canvas");
    state = { root, canvas, ctx: canvas.getContext("2d"), tip: root.querySelector(".tip"), width: 0, height: HEIGHT };
    states.set(parentElement, state);
    setMode(state, "pan");
    state.cleanup = listen(state);
    // for the browser tests and benchmarks: where each drawn point is on the page (viewport pixels), and its row
    root.curateMap = {
      points: () => viewportPoints(state),
      labels: () => state.data.labels || [],
      toViewport: (x, y) => {
        const box = state.canvas.getBoundingClientRect(), [sx, sy] = toScreen(state, x, y);
        return [box.left + sx, box.top + sy];
      },
    };
  }
  state.setTriggerValue = setTriggerValue;
  const previous = state.data;
  state.data = data;
  if (!previous || previous.points_id !== data.points_id) setPoints(state, data);
  else {
    // the same points (a veto or an opened cluster): only their colours may have changed
    state.points.color = decode(data.points.color, Uint16Array);
    state.points.value = decode(data.points.value, Float32Array);
  }
  if (!previous || previous.extent.join() !== data.extent.join()) state.view = [...data.extent];
  if (data.focus != null && data.highlight != null && (!previous || previous.focus !== data.focus)) {
    zoomTo(state, data.highlight);
  }
  setImage(state, data.image);
  setLegend(state);
  for (const button of state.root.querySelectorAll("button[data-mode=box], button[data-mode=lasso]")) {
    button.hidden = data.selectable === false;
  }
  state.root.dataset.revision = data.revision; // what tests and benchmarks wait on
  resize(state);
  draw(state);
  state.root.dataset.drawn = String(state.points.n);
  state.root.dataset.labels = String(state.labelsDrawn || 0);
  return () => {
    state.cleanup();
    states.delete(parentElement);
  };
}
