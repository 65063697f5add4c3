// Posts the SAML response to the portal (served by Sésame: the CSP forbids inline scripts).
document.getElementById("autopost").submit();
