"use strict";
// The periodic task form of django-celery-beat: under the crontab field, the chosen schedule
// in words ("Translation: At 04:00 …"), from the #readable-crontabs data.
(function ($) {
  $(function () {
    const data = document.getElementById("readable-crontabs");
    if (!data) return;
    const readable = JSON.parse(data.textContent);
    const help = $(".field-crontab .help");
    const original = help.html();
    $(".field-crontab_translation").hide();
    $(".field-crontab").on("change", function () {
      const words = readable[$("#id_crontab").val()];
      help.html(original);
      if (words) help.append("<br>", document.createTextNode(`Translation: ${words}`));
    });
  });
})(django.jQuery);
