// contactd panel: small progressive enhancements; every page works without this file.
"use strict";

// Search as you type: an input with data-live-rows="ID" refreshes the rows of tbody#ID,
// asking the server for the rows only, at most once per pause in typing.
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("input[data-live-rows]")) {
    const target = document.getElementById(input.dataset.liveRows);
    const form = input.form;
    if (!target || !form) continue;
    let timer = 0;
    let latest = 0;
    const refresh = async () => {
      const ticket = ++latest;
      const params = new URLSearchParams(new FormData(form));
      const url = `${form.action}?${params}`;
      const response = await fetch(url, { headers: { "X-Partial": "rows" } });
      if (!response.ok || ticket !== latest) return; // a newer request is on its way
      target.innerHTML = await response.text();
      history.replaceState(null, "", url);
    };
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(refresh, 200);
    });
  }
});
