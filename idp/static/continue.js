// Follows the page's "continue" link at once (served by Sésame: the CSP forbids inline
// scripts).  A navigation by script is not a form submission, so the redirect chain
// that follows is not held to this page's form-action.
document.getElementById("continue").click();
