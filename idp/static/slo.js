// The logout page waits for its frames (one per portal told), then continues:
// as soon as every portal answered, or after the page's time limit, whichever
// comes first.  Served by Sésame: the CSP forbids inline scripts.  Following the
// link is a navigation by script, not a form submission, so what follows is not
// held to this page's form-action.
(function () {
  var link = document.getElementById("continue");
  var deadline = Date.now() + 1000 * Number(link.getAttribute("data-wait"));
  function go() { window.location.assign(link.href); }
  function poll() {
    if (Date.now() >= deadline) { go(); return; }
    fetch(link.getAttribute("data-status"), {credentials: "same-origin", cache: "no-store"})
      .then(function (answer) { return answer.json(); })
      .then(function (state) { if (state.waiting === 0) { go(); } else { setTimeout(poll, 300); } })
      .catch(function () { setTimeout(poll, 300); });
  }
  setTimeout(poll, 200);
})();
