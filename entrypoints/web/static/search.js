// Search page: label suggestions from the catalog as you type.
(function () {
  "use strict";
  const input = document.getElementById("entity");
  const list = document.getElementById("label-suggestions");
  if (!input || !list) return;
  let pending = null;
  input.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      const query = new URLSearchParams({ prefix: input.value.trim(), limit: "20" });
      try {
        const response = await fetch("/api/labels?" + query);
        if (!response.ok) return;
        const labels = await response.json();
        list.replaceChildren(...labels.map((label) => {
          const option = document.createElement("option");
          option.value = label.entity;
          option.textContent = label.videos + " video(s)";
          return option;
        }));
      } catch (error) { /* keep the suggestions we have */ }
    }, 150);
  });
})();
