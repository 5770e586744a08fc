// Live parts and confirmations, with no library: the dashboard works with no internet.
// [data-poll="/fragments/..."] is refreshed every 2 s; forms with data-confirm ask first.
(function () {
  "use strict";
  function refresh(el) {
    fetch(el.dataset.poll, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { if (r.redirected || !r.ok) { throw new Error(String(r.status)); } return r.text(); })
      .then(function (html) { if (el.innerHTML !== html) { el.innerHTML = html; } })
      .catch(function () { /* keep what is shown; the next poll tries again */ });
  }
  document.querySelectorAll("[data-poll]").forEach(function (el) {
    setInterval(function () { refresh(el); }, Number(el.dataset.interval || 2000));
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.dataset && form.dataset.confirm;
    if (!question) { return; }
    var reason = form.querySelector("[name=reason]");
    if (reason && !reason.value.trim()) { event.preventDefault(); reason.focus(); reason.placeholder = "a reason is required"; return; }
    if (!window.confirm(question + (reason ? "\nReason: " + reason.value : ""))) { event.preventDefault(); }
  }, true);
})();
