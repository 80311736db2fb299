// Settings: offer the browser's time zone. When the account still has the default (UTC), the
// picker is set to the browser's zone, so saving the form keeps it.
(function () {
  "use strict";
  var form = document.getElementById("timezone-form");
  if (!form) return;
  var select = form.querySelector("select[name=timezone]");
  var note = document.getElementById("browser-zone");
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  if (!select || !zone) return;
  var option = select.querySelector('option[value="' + zone.replace(/"/g, "") + '"]');
  if (!option) return;
  note.querySelector("strong").textContent = zone;
  note.hidden = false;
  if (select.value === "UTC" && zone !== "UTC") {
    select.value = zone;
    document.getElementById("browser-zone-picked").hidden = false;
  }
})();
