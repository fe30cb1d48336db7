// The Themes page's live preview: the colours typed are applied to the preview box as they
// change (the server checks contrast when the form is sent).
"use strict";
(function () {
  const source = document.getElementById("theme-css");
  const preview = document.getElementById("theme-preview");
  if (!source || !preview) return;
  const declaration = /--([a-z][a-z0-9-]*)\s*:\s*(#[0-9a-fA-F]{3,6})\b/g;
  function apply() {
    for (const match of source.value.matchAll(declaration)) {
      preview.style.setProperty("--" + match[1], match[2]);
    }
  }
  source.addEventListener("input", apply);
  apply();
})();
