// Job page: live progress until the job ends, cancel, filters on the cards, the player.
(function () {
  "use strict";
  const head = document.getElementById("job");
  if (!head) return;
  const jobId = head.dataset.job;
  const finished = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);

  if (!finished.has(head.dataset.status)) {
    const timer = setInterval(async () => {
      try {
        const response = await fetch("/api/jobs/" + encodeURIComponent(jobId));
        if (!response.ok) return;
        const job = await response.json();
        const progress = head.querySelector(".progress");
        if (progress) {
          progress.querySelector(".bar span").style.width = job.percent + "%";
          progress.querySelector(".stage").textContent = job.stage;
        }
        const badge = document.getElementById("job-status");
        badge.className = "badge " + job.status;
        badge.textContent = job.status.replace(/_/g, " ");
        if (finished.has(job.status)) {
          clearInterval(timer);
          window.location.reload();
        }
      } catch (error) { /* try again at the next tick */ }
    }, 1000);
  }

  const cancel = document.getElementById("cancel");
  if (cancel) {
    cancel.addEventListener("click", async () => {
      if (!window.confirm("Cancel this job? Nothing more will be published.")) return;
      cancel.disabled = true;
      const response = await fetch("/api/jobs/" + encodeURIComponent(jobId), { method: "DELETE" });
      if (response.ok) window.location.reload(); else cancel.disabled = false;
    });
  }

  const label = document.getElementById("label-filter");
  const confidence = document.getElementById("confidence-filter");
  const shown = document.getElementById("shown-count");
  const confidenceValue = document.getElementById("confidence-value");
  function filter() {
    const wanted = label.value;
    const minimum = Number(confidence.value);
    confidenceValue.textContent = Math.round(minimum * 100) + "%";
    let count = 0;
    for (const card of document.querySelectorAll(".card")) {
      const visible = (!wanted || card.dataset.entity === wanted) &&
                      Number(card.dataset.confidence) >= minimum;
      card.hidden = !visible;
      if (visible) count += 1;
    }
    shown.textContent = count + " shown";
  }
  if (label && confidence) {
    label.addEventListener("change", filter);
    confidence.addEventListener("input", filter);
  }

  const player = document.getElementById("player");
  for (const button of document.querySelectorAll("button.seek")) {
    button.addEventListener("click", () => {
      if (!player) return;
      player.currentTime = Number(button.dataset.time);
      player.play().catch(() => {});
      player.scrollIntoView({ behavior: "smooth", block: "center" });
    });
  }
})();
