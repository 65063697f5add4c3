// The eID page's script (a file of its own: the page's Content-Security-Policy allows no
// inline script, and connect-src names the helper's loopback address on this page only).
// 1. ask Sésame for a fresh challenge (the key's JSON step), 2. hand it to the Web eID
// browser extension when the citizen has it, else to the `sesame eid` helper on 127.0.0.1,
// either of which signs with the card after the PIN, 3. post the token.
(function () {
  "use strict";
  var root = document.getElementById("eid");
  if (!root) { return; }
  var start = document.getElementById("eid-start");
  var status = document.getElementById("eid-status");
  var form = document.getElementById("eid-form");
  var field = document.getElementById("token");
  var fallback = document.getElementById("eid-fallback");
  var command = document.getElementById("eid-command");
  if (!field) { return; }  // a page without a challenge: only "Recommencer"
  var csrf = form.querySelector("input[name=csrf_token]").value;

  function text(code) {
    var item = document.querySelector('#eid-messages [data-code="' + code + '"]');
    return item ? item.textContent : "";
  }

  function show(code, tries) {
    status.textContent = (text(code) || text("card_error")) + (tries ? " " + text(tries) : "");
    status.setAttribute("data-code", code);
  }

  function ask(url, options) {
    return fetch(url, options).then(function (answer) {
      return answer.json().then(function (body) { return { ok: answer.ok, body: body }; });
    });
  }

  // The Web eID browser extension, when the citizen has it: its content script
  // answers a window message "web-eid:authenticate" with "-ack" within a second,
  // then "-success" (the same web-eid:1.0 token the helper gives) or "-failure".
  // No acknowledgement: no extension, the page goes on with the helper.
  var EXTENSION_ERRORS = { ERR_WEBEID_USER_CANCELLED: "cancelled", ERR_WEBEID_USER_TIMEOUT: "cancelled" };

  function viaExtension(nonce) {
    return new Promise(function (resolve, reject) {
      var acknowledged = false;
      var finished = false;
      var ackTimer, replyTimer;
      function finish(result, failure) {
        if (finished) { return; }
        finished = true;
        window.removeEventListener("message", listen);
        clearTimeout(ackTimer);
        clearTimeout(replyTimer);
        if (failure) { reject(failure); } else { resolve(result); }
      }
      function listen(event) {
        var data = event.data;
        if (event.source !== window || !data || typeof data.action !== "string") { return; }
        if (data.action === "web-eid:authenticate-ack") {
          acknowledged = true;
          clearTimeout(ackTimer);
        } else if (data.action === "web-eid:authenticate-success") {
          finish({ ok: true, body: { unverifiedCertificate: data.unverifiedCertificate, algorithm: data.algorithm,
                                     signature: data.signature, format: data.format, appVersion: data.appVersion } });
        } else if (data.action === "web-eid:authenticate-failure") {
          var code = data.error && data.error.code;
          finish({ ok: false, body: { error: EXTENSION_ERRORS[code] || "card_error" } });
        }
      }
      window.addEventListener("message", listen);
      ackTimer = setTimeout(function () { if (!acknowledged) { finish(null, "no_extension"); } }, 1000);
      replyTimer = setTimeout(function () { finish({ ok: false, body: { error: "cancelled" } }); }, 130000);
      window.postMessage({ action: "web-eid:authenticate", libraryVersion: "2.0.0", challengeNonce: nonce,
                           options: { lang: document.documentElement.lang } }, window.location.origin);
    });
  }

  function viaHelper(nonce) {
    return ask(root.getAttribute("data-helper"), {
      method: "POST", mode: "cors", credentials: "omit",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ nonce: nonce })
    }).catch(function () { return { ok: false, body: { error: "no_helper" } }; });
  }

  start.hidden = false;
  start.addEventListener("click", function () {
    start.disabled = true;
    show("signing");
    ask(root.getAttribute("data-challenge"), {
      method: "POST", credentials: "same-origin", body: "{}",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf }
    }).then(function (challenge) {
      var nonce = challenge.body.nonce;
      // The paste fallback signs this challenge now (the page's first one is replaced).
      command.textContent = "sesame eid sign --origin " + root.getAttribute("data-origin") + " --nonce " + nonce;
      return viaExtension(nonce).catch(function () { return viaHelper(nonce); });
    }).then(function (answer) {
      if (answer.ok) {
        field.value = JSON.stringify(answer.body);
        // Not form.submit(): the form's "submit" button shadows that name.
        HTMLFormElement.prototype.submit.call(form);
        return;
      }
      show(answer.body.error || "card_error", answer.body.tries);
      // Told to Sésame for its audit (the card's errors happen on this computer only).
      fetch(root.getAttribute("data-report"), {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ error: answer.body.error || "card_error", tries: answer.body.tries || null })
      }).catch(function () { return null; });
      if (answer.body.error === "no_helper") { fallback.open = true; }
      start.disabled = false;
    }).catch(function () {
      show("card_error");
      start.disabled = false;
    });
  });
}());
