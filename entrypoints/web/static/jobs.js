// Jobs page: refresh every job's status and progress without reloading the page.
(function () {
  "use strict";
  const table = document.getElementById("jobs");
  if (!table) return;
  const body = table.tBodies[0];
  const finished = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);
  const page = Number(table.dataset.page || 1);
  const status = table.dataset.status || "";
  const limit = 50;

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  function when(ts) {
    if (!ts) return "-";
    const d = new Date(ts * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
           `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function row(job) {
    const tr = document.createElement("tr");
    tr.id = "job-" + job.job_id;
    tr.dataset.job = job.job_id;
    const video = cell("", "video");
    const link = document.createElement("a");
    link.href = "/jobs/" + encodeURIComponent(job.job_id);
    link.textContent = job.video_uri;
    video.appendChild(link);
    const statusCell = cell("", "status");
    const badge = document.createElement("span");
    statusCell.appendChild(badge);
    const progressCell = document.createElement("td");
    progressCell.innerHTML = '<div class="progress"><div class="bar"><span></span></div><span class="stage"></span></div>';
    tr.append(video, cell(job.source || "-"), cell(job.backend), statusCell, progressCell,
              cell(when(job.created_at), "when"), cell("-", "took"), cell("", "error"));
    return tr;
  }

  function update(tr, job) {
    const badge = tr.querySelector(".status .badge") || tr.querySelector(".status span");
    badge.className = "badge " + job.status;
    badge.textContent = job.status.replace(/_/g, " ");
    const progress = tr.querySelector(".progress");
    progress.dataset.status = job.status;
    progress.querySelector(".bar span").style.width = job.percent + "%";
    progress.querySelector(".stage").textContent = job.stage;
    tr.querySelector(".took").textContent = finished.has(job.status)
      ? (job.updated_at - job.created_at).toFixed(1) + " s" : "-";
    tr.querySelector(".error").textContent = job.error || "";
  }

  async function refresh() {
    const query = new URLSearchParams({ offset: String((page - 1) * limit), limit: String(limit) });
    if (status) query.set("status", status);
    try {
      const response = await fetch("/api/jobs?" + query, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const data = await response.json();
      document.getElementById("job-count").textContent = data.total + " job(s)";
      const empty = body.querySelector("tr.empty");
      if (empty && data.jobs.length) empty.remove();
      let previous = null;
      for (const job of data.jobs) {
        let tr = document.getElementById("job-" + job.job_id);
        if (!tr) {
          tr = row(job);
          if (previous) previous.after(tr); else body.prepend(tr);
        }
        update(tr, job);
        previous = tr;
      }
      if (status) {  // a filtered list: jobs that no longer match it (a running job that ended) go
        const shown = new Set(data.jobs.map((job) => job.job_id));
        for (const tr of Array.from(body.querySelectorAll("tr[data-job]"))) {
          if (!shown.has(tr.dataset.job)) tr.remove();
        }
      }
    } catch (error) {
      // The server may be restarting; try again at the next tick.
    }
  }

  setInterval(refresh, 1500);
  refresh();
})();
