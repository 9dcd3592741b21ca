// Two frames after load, tell the shell the page is on screen (as ui/app.js does).
requestAnimationFrame(() =>
  requestAnimationFrame(() => window.__TAURI__.core.invoke("ui_ready").catch(() => {})),
);
