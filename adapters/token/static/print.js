// The card's "Imprimer" button (hidden without scripts: the hint beside it says Ctrl+P).
// A file of its own: the page's Content-Security-Policy allows no inline script.
document.querySelectorAll("[data-print]").forEach(function (button) {
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
});
