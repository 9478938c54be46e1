// The detector page: upload one recording, show the verdict, the spectrogram and p(fake) over time.
// Plain browser JavaScript, no build step and no network access beyond this server.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  // Both canvases leave the same margins so their time axes line up under each other.
  const MARGIN = { left: 48, right: 14 };
  const CHART_PAD = { top: 12, bottom: 26 };
  const TIME_STEPS = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];

  let limits = null;
  let shown = null; // {result, picture, audioUrl}

  // ---- small helpers -------------------------------------------------------------------------------------------

  const cssColour = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  // One decimal, except for whole percentages (a 0.5 threshold reads "50%").
  const percent = (p) => `${+(100 * p).toFixed(1)}%`;
  const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

  function formatTime(seconds, step) {
    if (step >= 60 || seconds >= 60) {
      const whole = Math.round(seconds);
      return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
    }
    return `${step < 1 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  }

  function formatDuration(seconds) {
    return seconds >= 60 ? formatTime(seconds, 60) + " min" : `${seconds.toFixed(1)} s`;
  }

  function parseJson(text) {
    try { return JSON.parse(text); } catch (_) { return null; }
  }

  // ---- page state ----------------------------------------------------------------------------------------------

  function showError(message) {
    setBusy(false);
    $("error").textContent = message;
    $("error").hidden = false;
  }

  function setBusy(busy) {
    document.body.classList.toggle("busy", busy);
    $("status").hidden = !busy;
    $("file-input").disabled = busy;
  }

  function setProgress(fraction) {
    $("status-text").textContent = "Uploading…";
    $("status-percent").textContent = `${Math.round(100 * fraction)}%`;
    $("progress-bar").style.width = `${100 * fraction}%`;
    $("status").querySelector(".progress").classList.remove("indeterminate");
  }

  function setScoring() {
    $("status-text").textContent = "Scoring…";
    $("status-percent").textContent = "";
    $("progress-bar").style.width = "";
    $("status").querySelector(".progress").classList.add("indeterminate");
  }

  async function loadLimits() {
    try {
      const response = await fetch("/health");
      const health = await response.json();
      limits = health.limits;
      const minutes = limits.max_duration_s / 60;
      $("limits").textContent = `WAV, MP3, FLAC, Ogg or M4A · up to ${limits.max_upload_mb} MB and ` +
        (minutes >= 1 ? `${+minutes.toFixed(1)} min` : `${limits.max_duration_s} s`);
      $("model-line").textContent = `Model “${health.model}” (version ${health.version}), ` +
        `scoring ${health.window_s} s windows on ${health.device}.`;
    } catch (_) {
      $("model-line").textContent = "The server did not answer /health; uploads may fail.";
    }
  }

  // ---- upload --------------------------------------------------------------------------------------------------

  function chooseFile(file) {
    $("error").hidden = true;
    if (!file) return;
    if (limits && file.size > limits.max_upload_mb * 2 ** 20) {
      showError(`“${file.name}” is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is ${limits.max_upload_mb} MB.`);
      return;
    }
    upload(file);
  }

  function upload(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    const request = new XMLHttpRequest();
    // explain=auto: Grad-CAM overlays (one network call per window) for the most suspect windows.
    request.open("POST", "/predict?spectrogram=true&explain=auto");
    request.upload.onprogress = (event) => { if (event.lengthComputable) setProgress(event.loaded / event.total); };
    request.upload.onload = setScoring;
    request.onload = () => {
      const body = parseJson(request.responseText);
      if (request.status === 200 && body && !body.error) {
        setBusy(false);
        showResult(body, file);
      } else {
        showError(body && body.error ? `Could not score “${file.name}”: ${body.error}.`
          : `The server answered ${request.status} ${request.statusText}.`);
      }
    };
    request.onerror = () => showError("Could not reach the server. Check that it is still running and try again.");
    $("result").hidden = true;
    setBusy(true);
    setProgress(0);
    request.send(form);
  }

  // ---- result --------------------------------------------------------------------------------------------------

  function showResult(result, file) {
    if (shown && shown.audioUrl) URL.revokeObjectURL(shown.audioUrl);
    shown = { result, picture: null, audioUrl: URL.createObjectURL(file) };
    const fake = result.label === "fake";
    const panel = document.querySelector(".verdict-panel");
    panel.classList.toggle("is-fake", fake);
    panel.classList.toggle("is-real", !fake);
    $("file-name").textContent = result.file;
    const count = result.windows.length;
    $("file-meta").textContent = `· ${formatDuration(result.duration_s)} · ${count} window${count === 1 ? "" : "s"}`;
    $("verdict").textContent = fake ? "Likely synthetic (fake)" : "Likely human (real)";
    $("score-line").innerHTML = "";
    $("score-line").append("Probability that the speech is synthetic: ");
    const strong = document.createElement("strong");
    strong.textContent = percent(result.p_fake);
    $("score-line").append(strong);
    $("threshold-line").textContent = `The model calls a recording synthetic when this probability is ` +
      `${percent(result.threshold)} or more, a threshold chosen on held-out validation recordings; ` +
      `the chart shows the same probability for each ${count > 1 ? "part" : "window"} of the recording.`;
    $("meter-fill").style.width = `${100 * result.p_fake}%`;
    $("meter-threshold").style.left = `calc(${100 * result.threshold}% - 1px)`;
    $("player").src = shown.audioUrl;
    const span = result.suspect_span;
    $("suspect-line").hidden = !span;
    if (span) {
      $("suspect-line").textContent = `Most suspect part: ${formatTime(span.start, 0.5)} – ${formatTime(span.end, 0.5)} ` +
        `(probability ${percent(span.p_fake)} there, from the overlapping windows).`;
    }
    $("result").hidden = false;
    const explained = (result.explanation && result.explanation.windows) || [];
    $("explain-panel").hidden = explained.length === 0;
    if (explained.length) {
      const top = explained.reduce((best, window) => (window.p_fake > best.p_fake ? window : best));
      showExplanation(top.index);
    }
    if (result.spectrogram_png) {
      const picture = new Image();
      picture.onload = () => { shown.picture = picture; redraw(); };
      picture.src = result.spectrogram_png;
    }
    redraw();
  }

  // ---- explanations --------------------------------------------------------------------------------------------

  // The window under a time: of the windows covering it, the one whose centre is nearest.
  function windowAt(time) {
    let best = null;
    shown.result.windows.forEach((span, index) => {
      if (time < span.start || time > span.end) return;
      const distance = Math.abs((span.start + span.end) / 2 - time);
      if (!best || distance < best.distance) best = { index, distance };
    });
    return best ? best.index : null;
  }

  function showExplanation(index) {
    const explanation = shown.result.explanation;
    if (!explanation || index === null) return;
    const span = shown.result.windows[index];
    const entry = explanation.windows.find((window) => window.index === index);
    shown.selected = index;
    $("explain-caption").textContent = `Window ${formatTime(span.start, 0.5)} – ${formatTime(span.end, 0.5)}: ` +
      `probability ${percent(span.p_fake)} (${explanation.method === "gradcam" ? "Grad-CAM" : "occlusion"}).`;
    $("overlay").hidden = !entry;
    $("regions").innerHTML = "";
    if (!entry) {
      $("explain-caption").append(` Only the ${explanation.windows.length} most suspect windows are explained; ` +
        "this one is not.");
    } else {
      $("overlay").src = entry.overlay_png;
      entry.regions.forEach((region) => {
        const item = document.createElement("li");
        item.textContent = `${region.start.toFixed(2)}–${region.end.toFixed(2)} s, ` +
          `${Math.round(region.low_hz)}–${Math.round(region.high_hz)} Hz: ${percent(region.share)} of the map`;
        $("regions").append(item);
      });
    }
    redraw();
  }

  // ---- drawing -------------------------------------------------------------------------------------------------

  function prepareCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    context.font = "12px system-ui, sans-serif";
    return { context, width, height };
  }

  function timeAxis(width) {
    const duration = Math.max(shown.result.duration_s, 1e-6);
    const plotWidth = width - MARGIN.left - MARGIN.right;
    return {
      duration,
      toX: (t) => MARGIN.left + (t / duration) * plotWidth,
      toTime: (x) => clamp(((x - MARGIN.left) / plotWidth) * duration, 0, duration),
      step: TIME_STEPS.find((step) => duration / step <= plotWidth / 70) || TIME_STEPS[TIME_STEPS.length - 1],
    };
  }

  function drawPlayhead(context, axis, top, bottom) {
    const player = $("player");
    if (!player.currentTime) return;
    const x = axis.toX(Math.min(player.currentTime, axis.duration));
    context.strokeStyle = cssColour("--ink");
    context.lineWidth = 1.5;
    context.setLineDash([]);
    context.beginPath();
    context.moveTo(x, top);
    context.lineTo(x, bottom);
    context.stroke();
  }

  function drawSpectrogram() {
    const { context, width, height } = prepareCanvas($("spectrogram"));
    const axis = timeAxis(width);
    const plotWidth = width - MARGIN.left - MARGIN.right;
    context.fillStyle = "#000004"; // magma's darkest colour, until the picture arrives
    context.fillRect(MARGIN.left, 0, plotWidth, height);
    if (shown.picture) {
      context.imageSmoothingEnabled = true;
      context.drawImage(shown.picture, MARGIN.left, 0, plotWidth, height);
    }
    context.fillStyle = cssColour("--muted");
    context.textAlign = "right";
    context.textBaseline = "top";
    context.fillText("high", MARGIN.left - 6, 2);
    context.textBaseline = "bottom";
    context.fillText("low", MARGIN.left - 6, height - 2);
    context.save();
    context.translate(12, height / 2);
    context.rotate(-Math.PI / 2);
    context.textAlign = "center";
    context.textBaseline = "middle";
    context.fillText("frequency", 0, 0);
    context.restore();
    drawPlayhead(context, axis, 0, height);
  }

  function drawChart() {
    const { context, width, height } = prepareCanvas($("chart"));
    const axis = timeAxis(width);
    const { result } = shown;
    const top = CHART_PAD.top;
    const bottom = height - CHART_PAD.bottom;
    const toY = (p) => bottom - p * (bottom - top);
    const right = width - MARGIN.right;
    const fakeColour = cssColour("--fake");

    // Everything above the threshold is the "called synthetic" region.
    context.fillStyle = cssColour("--fake-soft");
    context.fillRect(MARGIN.left, toY(1), right - MARGIN.left, toY(result.threshold) - toY(1));

    context.strokeStyle = cssColour("--line");
    context.fillStyle = cssColour("--muted");
    context.lineWidth = 1;
    context.textAlign = "right";
    context.textBaseline = "middle";
    for (const p of [0, 0.25, 0.5, 0.75, 1]) {
      context.beginPath();
      context.moveTo(MARGIN.left, toY(p));
      context.lineTo(right, toY(p));
      context.stroke();
      context.fillText(`${100 * p}%`, MARGIN.left - 6, toY(p));
    }
    context.textAlign = "center";
    context.textBaseline = "top";
    for (let t = 0; t <= axis.duration + 1e-9; t += axis.step) {
      context.fillText(formatTime(t, axis.step), clamp(axis.toX(t), MARGIN.left + 10, right - 14), bottom + 6);
    }

    context.strokeStyle = fakeColour;
    context.lineWidth = 1.5;
    context.setLineDash([6, 4]);
    context.beginPath();
    context.moveTo(MARGIN.left, toY(result.threshold));
    context.lineTo(right, toY(result.threshold));
    context.stroke();
    context.setLineDash([]);

    drawSuspectSpan(context, axis, top, bottom);
    drawWindows(context, axis, toY);
    drawThresholdLabel(context, `threshold ${percent(result.threshold)}`, right - 2, toY(result.threshold));
    drawPlayhead(context, axis, top, bottom);
  }

  function drawSuspectSpan(context, axis, top, bottom) {
    const span = shown.result.suspect_span;
    if (span) {
      // A light band over the span and a solid bar along the time axis.
      const left = axis.toX(span.start);
      const width = Math.max(2, axis.toX(span.end) - left);
      context.fillStyle = "rgba(29, 27, 34, 0.08)";
      context.fillRect(left, top, width, bottom - top);
      context.fillStyle = cssColour("--ink");
      context.fillRect(left, bottom - 4, width, 4);
    }
    if (shown.selected !== undefined && shown.selected !== null) {
      const selected = shown.result.windows[shown.selected];
      context.strokeStyle = cssColour("--accent");
      context.lineWidth = 1;
      context.setLineDash([3, 3]);
      context.strokeRect(axis.toX(selected.start), top, axis.toX(selected.end) - axis.toX(selected.start), bottom - top);
      context.setLineDash([]);
    }
  }

  function drawThresholdLabel(context, text, x, y) {
    // On a backing box, so the label stays readable where the score line crosses it.
    const width = context.measureText(text).width + 8;
    const above = y - 20 >= CHART_PAD.top;
    const boxTop = above ? y - 19 : y + 3;
    context.fillStyle = "rgba(255, 255, 255, 0.85)";
    context.fillRect(x - width, boxTop, width, 16);
    context.fillStyle = cssColour("--fake");
    context.textAlign = "right";
    context.textBaseline = "middle";
    context.fillText(text, x - 4, boxTop + 8);
  }

  function drawWindows(context, axis, toY) {
    const accent = cssColour("--accent");
    const windows = shown.result.windows;
    // Each window's span as a faint bar, then a line through the window centres.
    context.strokeStyle = accent;
    context.globalAlpha = 0.3;
    context.lineWidth = 4;
    for (const span of windows) {
      context.beginPath();
      context.moveTo(axis.toX(span.start), toY(span.p_fake));
      context.lineTo(axis.toX(span.end), toY(span.p_fake));
      context.stroke();
    }
    context.globalAlpha = 1;
    context.lineWidth = 2;
    context.beginPath();
    windows.forEach((span, index) => {
      const x = axis.toX((span.start + span.end) / 2);
      if (index === 0) context.moveTo(x, toY(span.p_fake)); else context.lineTo(x, toY(span.p_fake));
    });
    context.stroke();
    for (const span of windows) {
      context.fillStyle = span.p_fake >= shown.result.threshold ? cssColour("--fake") : accent;
      context.beginPath();
      context.arc(axis.toX((span.start + span.end) / 2), toY(span.p_fake), 3.5, 0, 2 * Math.PI);
      context.fill();
    }
  }

  function redraw() {
    if (!shown || $("result").hidden) return;
    drawSpectrogram();
    drawChart();
  }

  // ---- playback ------------------------------------------------------------------------------------------------

  function playFrom(event) {
    if (!shown) return;
    const canvas = event.currentTarget;
    const x = event.clientX - canvas.getBoundingClientRect().left;
    const player = $("player");
    const time = timeAxis(canvas.clientWidth).toTime(x);
    player.currentTime = time;
    player.play().catch(() => {});
    if (canvas.id === "chart") showExplanation(windowAt(time));
    redraw();
  }

  function followPlayback() {
    redraw();
    if (!$("player").paused) requestAnimationFrame(followPlayback);
  }

  // ---- wiring --------------------------------------------------------------------------------------------------

  function wireDragAndDrop() {
    const zone = $("drop-zone");
    let depth = 0; // dragenter/dragleave fire for every child element
    document.addEventListener("dragenter", (event) => { event.preventDefault(); depth += 1; zone.classList.add("dragging"); });
    document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) zone.classList.remove("dragging"); });
    document.addEventListener("dragover", (event) => event.preventDefault());
    document.addEventListener("drop", (event) => {
      event.preventDefault();
      depth = 0;
      zone.classList.remove("dragging");
      if (document.body.classList.contains("busy")) return;
      chooseFile(event.dataTransfer.files[0]);
    });
  }

  function init() {
    $("file-input").addEventListener("change", (event) => {
      chooseFile(event.target.files[0]);
      event.target.value = ""; // choosing the same file again should upload it again
    });
    wireDragAndDrop();
    $("spectrogram").addEventListener("click", playFrom);
    $("chart").addEventListener("click", playFrom);
    $("player").addEventListener("play", followPlayback);
    $("player").addEventListener("seeked", redraw);
    $("player").addEventListener("error", () => {
      if (shown) $("threshold-line").append(" (This browser cannot play this audio format; the scores are unaffected.)");
    });
    new ResizeObserver(redraw).observe($("result"));
    loadLimits();
  }

  init();
})();
