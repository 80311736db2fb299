// The imports page: drag and drop, the size check before upload, and the live progress bar.
(function () {
  var form = document.getElementById("upload-form");
  var input = form.querySelector("input[type=file]");
  var zone = document.getElementById("dropzone");
  var errors = document.getElementById("upload-errors");
  var maxBytes = parseInt(form.dataset.maxBytes, 10);
  function tooBig() {
    var file = input.files && input.files[0];
    return file && file.size > maxBytes;
  }
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (e) {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; }
  });
  form.addEventListener("submit", function (e) {
    if (tooBig()) {
      e.preventDefault();
      errors.innerHTML = "";
      var li = document.createElement("li");
      li.textContent = "The file is larger than the " + form.dataset.maxMb + " MB limit (IMPORT_MAX_ZIP_SIZE_MB).";
      errors.appendChild(li);
    }
  });

  function poll() {
    var rows = document.querySelectorAll("tr.import-job[data-status=pending], tr.import-job[data-status=running]");
    if (!rows.length) { return; }
    var pending = rows.length;
    rows.forEach(function (row) {
      fetch(row.dataset.statusUrl, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (job) {
        var bar = row.querySelector(".job-progress");
        var text = row.querySelector(".job-progress-text");
        row.querySelector(".job-status").textContent = job.status.charAt(0).toUpperCase() + job.status.slice(1);
        if (bar) { bar.value = job.progress; }
        if (text) { text.textContent = job.records + " records · " + job.progress + "%"; }
        if (job.status === "succeeded" || job.status === "failed") { window.location.reload(); }
      }).finally(function () {
        pending -= 1;
        if (pending === 0) { setTimeout(poll, 1000); }
      });
    });
  }
  setTimeout(poll, 500);
})();
