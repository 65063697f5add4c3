// The stand-in card page: ask the local helper to sign the nonce, then hand the
// signature to Sésame's JSON step, then go where Sésame says.
(async function () {
  const card = document.getElementById("card");
  const status = document.getElementById("status");
  try {
    const helper = await fetch(card.dataset.helper + "/sign?nonce=" + encodeURIComponent(card.dataset.nonce));
    const signed = await helper.json();
    const answer = await fetch(card.dataset.sign, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": card.dataset.csrf},
      body: JSON.stringify(signed),
    });
    const body = await answer.json();
    if (!answer.ok) { status.dataset.state = body.error || "refused"; return; }
    window.location.assign(body.next);
  } catch (e) {
    status.dataset.state = "helper_unreachable";
  }
})();
