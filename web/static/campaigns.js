// Campaign forms: "Listen" plays the message text as the IVR's text-to-speech speaks it.
"use strict";
(function () {
  for (const box of document.querySelectorAll("[data-message]")) {
    const button = box.querySelector("[data-listen]");
    const player = box.querySelector("[data-player]");
    const error = box.querySelector("[data-listen-error]");
    const text = box.querySelector("textarea[name=message_text]");
    button.addEventListener("click", async () => {
      error.hidden = true;
      const url = "/campaigns/preview.wav?message_text=" + encodeURIComponent(text.value);
      const answer = await fetch(url, { credentials: "same-origin" });
      if (!answer.ok) {
        let detail = answer.statusText;
        try { detail = (await answer.json()).detail || detail; } catch (e) { /* not JSON */ }
        error.textContent = detail; error.hidden = false; return;
      }
      player.src = url;  // made and cached by the request above
      player.hidden = false;
      player.dataset.ready = "1";
      player.play().catch(() => { /* autoplay refused: the controls are there */ });
    });
  }
})();
