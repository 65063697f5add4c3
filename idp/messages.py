"""What citizens read, by message key: translated through Flask-Babel.

Error codes (``idp.errors``) and the codes adapters return in ``Failure`` and
``Challenge.error`` are keys here.  French first; nl, de, en in the catalogs.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

ERRORS = {
    "error": _l("Une erreur est survenue. Veuillez réessayer."),
    "internal": _l("Une erreur technique est survenue. Veuillez réessayer dans quelques instants."),
    "saml_request": _l("La demande de connexion du service en ligne n'est pas valable."),
    "malformed_request": _l("La demande de connexion du service en ligne est illisible ou incomplète."),
    "unknown_portal": _l("Ce service en ligne n'est pas connu de Sésame."),
    "unknown_consumer_url": _l("L'adresse de retour demandée n'est pas celle enregistrée pour ce service en ligne."),
    "signature_required": _l("Ce service en ligne doit signer ses demandes de connexion, et celle-ci ne l'est pas."),
    "bad_signature": _l("La signature de la demande de connexion n'est pas valable."),
    "stale_request": _l("La demande de connexion a expiré. Retournez au service en ligne et recommencez."),
    "replayed_request": _l("Cette demande de connexion a déjà été utilisée. Retournez au service en ligne et recommencez."),
    "wrong_destination": _l("Cette demande de connexion était destinée à un autre fournisseur d'identité."),
    "no_authn_context": _l("Aucune clé numérique ne permet d'atteindre le niveau de sécurité demandé par ce service en ligne."),
    "no_acceptable_key": _l("Aucune clé numérique ne permet d'atteindre le niveau de sécurité demandé par ce service en ligne."),
    "no_passive": _l("Vous n'êtes pas encore identifié(e)."),
    "invalid_nameid_policy": _l("Le format d'identifiant demandé par ce service en ligne n'est pas disponible."),
    "login_expired": _l("Votre session de connexion a expiré. Retournez au service en ligne et recommencez."),
    "store_unavailable": _l("Le service est momentanément indisponible et ce que vous faisiez n'a pas abouti. "
                            "Retournez au service en ligne et recommencez dans quelques instants."),
    "unknown_key": _l("Cette clé numérique n'existe pas."),
    "key_not_allowed": _l("Cette clé numérique n'est pas acceptée par ce service en ligne."),
    "csrf_failed": _l("Le formulaire a expiré. Veuillez recommencer."),
    "not_found": _l("Cette page n'existe pas."),
    "config": _l("Une erreur technique est survenue. Veuillez réessayer dans quelques instants."),
    "bad_metadata": _l("Une erreur technique est survenue. Veuillez réessayer dans quelques instants."),
    # password key
    "bad_credentials": _l("Le nom d'utilisateur ou le mot de passe est incorrect."),
    "missing_credentials": _l("Veuillez introduire votre nom d'utilisateur et votre mot de passe."),
    "account_blocked": _l("Votre compte a été bloqué après trop de tentatives. Réessayez dans %(minutes)s minutes."),
    "rate_limited": _l("Trop de tentatives de connexion en peu de temps. Réessayez dans %(minutes)s minutes."),
    "busy": _l("Sésame reçoit beaucoup de demandes en ce moment. Veuillez réessayer dans quelques instants."),
    # a new password (idp/people/password_policy.py)
    "password_too_short": _l("Le mot de passe doit compter au moins %(min_length)s caractères."),
    "password_too_long": _l("Le mot de passe ne peut pas dépasser %(max_length)s caractères."),
    "password_common": _l("Ce mot de passe est trop courant. Choisissez-en un plus difficile à deviner."),
    "password_contains_username": _l("Le mot de passe ne peut pas contenir votre nom d'utilisateur."),
    # journeys
    "journey_conflict": _l("Cette page a été envoyée plusieurs fois en même temps. Veuillez recommencer."),
    "bad_return": _l("Le retour vers Sésame n'est pas valable ou a déjà été utilisé. Retournez au service en ligne et recommencez."),
    "result_refused": _l("Cette identification ne peut pas être acceptée ici. Choisissez une autre clé numérique."),
    "level_not_reached": _l("Cette identification n'atteint pas le niveau de sécurité demandé. Choisissez une autre clé numérique."),
    "unknown_person": _l("Vous n'êtes pas encore enregistré(e) auprès de Sésame avec cette clé numérique."),
    "unexpected_return": _l("Le retour vers Sésame n'est pas valable ou a déjà été utilisé. Retournez au service en ligne et recommencez."),
    "unknown_step": _l("Cette page n'existe pas."),
    # security codes (adapters/one_time_code.py, adapters/security_code.py)
    "missing_code": _l("Veuillez introduire le code de sécurité."),
    "bad_code": _l("Ce code de sécurité n'est pas correct. Il vous reste %(attempts_left)s essai(s)."),
    "code_expired": _l("Ce code de sécurité a expiré ou a déjà été utilisé. Demandez un nouveau code."),
    "too_many_code_attempts": _l("Trop de codes erronés. Recommencez l'identification pour recevoir un nouveau code."),
    "resend_too_soon": _l("Un code vient d'être envoyé. Vous pourrez en demander un nouveau dans %(seconds)s secondes."),
    "too_many_sends": _l("Trop de codes ont été envoyés. Réessayez dans %(minutes)s minutes."),
    "delivery_failed": _l("Le code n'a pas pu être envoyé. Veuillez réessayer dans quelques instants."),
    "key_not_active": _l("Vous n'avez pas encore activé cette clé numérique."),
    "passwords_differ": _l("Les deux mots de passe ne sont pas identiques."),
    "username_taken": _l("Ce nom d'utilisateur est déjà utilisé. Choisissez-en un autre."),
    "username_empty": _l("Veuillez introduire un nom d'utilisateur."),
    "username_too_long": _l("Ce nom d'utilisateur est trop long."),
    "username_bad_characters": _l("Ce nom d'utilisateur contient des caractères non autorisés."),
    "bad_email": _l("Cette adresse e-mail n'est pas valable."),
    "bad_phone": _l("Ce numéro de téléphone mobile n'est pas valable. Exemple : +32 470 12 34 56."),
    "activation_level": _l("Pour activer une clé numérique, identifiez-vous d'abord avec le lecteur de cartes eID ou via itsme."),
    "step_order": _l("Cette étape n'est pas encore disponible. Veuillez recommencer depuis le début."),
    # account
    "login_required": _l("Identifiez-vous pour accéder à cette page."),
    "manage_level": _l("Pour modifier vos clés numériques, identifiez-vous avec une clé numérique plus sûre."),
    "wrong_current_password": _l("Votre mot de passe actuel n'est pas correct."),
    "missing_fields": _l("Veuillez remplir tous les champs."),
    "account_conflict": _l("Vos clés numériques ont été modifiées entre-temps. Veuillez recommencer."),
    "no_such_key": _l("Vous n'avez pas de clé numérique active de ce type."),
    "bad_language": _l("Cette langue n'est pas disponible."),
    "missing_identifier": _l("Veuillez introduire votre nom d'utilisateur ou votre adresse e-mail."),
    "recovery_expired": _l("Cette demande a expiré ou a déjà été utilisée. Veuillez recommencer."),
    # registration office
    "officer_level": _l("Le bureau d'enregistrement est réservé aux agents identifiés avec le lecteur de cartes eID ou via itsme."),
    "not_an_officer": _l("Vous n'êtes pas agent de ce bureau d'enregistrement."),
    "office_missing_fields": _l("Veuillez remplir tous les champs obligatoires."),
    "bad_document_type": _l("Choisissez le type de document d'identité."),
    "bad_document_number": _l("Ce numéro de document n'est pas valable : de 5 à 20 lettres et chiffres."),
    "bad_country": _l("Indiquez le pays par son code à deux lettres (par exemple FR, NL, MA)."),
    "bad_document_expiry": _l("La date d'expiration du document n'est pas valable."),
    "document_expired": _l("Ce document d'identité a expiré : il ne peut pas servir à l'enregistrement."),
    "bad_name": _l("Ce nom n'est pas valable."),
    "bad_birth_date": _l("Cette date de naissance n'est pas valable."),
    "bad_sex": _l("Ce sexe n'est pas valable."),
    "bad_nrn": _l("Ce numéro de registre national ou numéro BIS n'est pas valable."),
    "duplicate_document": _l("Ce document d'identité a déjà servi à un enregistrement. Retrouvez la personne dans la liste des enregistrements."),
    "nrn_registered": _l("Une personne portant ce numéro est déjà enregistrée auprès de Sésame."),
    "office_conflict": _l("L'enregistrement n'a pas pu être terminé. Veuillez réessayer."),
    "no_such_registration": _l("Cet enregistrement n'existe pas dans ce bureau."),
    "activation_mail_failed": _l("L'e-mail d'activation n'a pas pu être envoyé : rien n'a été enregistré. Vérifiez l'adresse et réessayez."),
    "token_unavailable": _l("Le token n'est pas disponible sur cette instance de Sésame."),
    "missing_activation_code": _l("Veuillez introduire votre code d'activation."),
    "bad_activation_code_format": _l("Un code d'activation compte 20 lettres et chiffres, en quatre groupes de cinq."),
    "bad_activation_code": _l("Ce code d'activation n'est pas correct. Il vous reste %(attempts_left)s essai(s)."),
    "activation_code_void": _l("Trop de codes erronés : ce code d'activation n'est plus valable. Rendez-vous au bureau d'enregistrement pour en recevoir un nouveau."),
    "activation_expired": _l("Ce code d'activation a expiré. Rendez-vous au bureau d'enregistrement pour en recevoir un nouveau."),
    "activation_used": _l("Ce lien d'activation a déjà été utilisé. Identifiez-vous avec votre clé numérique, ou rendez-vous au bureau d'enregistrement."),
    "activation_replaced": _l("Ce lien d'activation a été remplacé par un nouveau. Utilisez le dernier e-mail d'activation reçu."),
    "activation_link_unknown": _l("Ce lien d'activation n'est pas valable. Vérifiez qu'il est complet, ou rendez-vous au bureau d'enregistrement."),
    "activation_grant_expired": _l("Votre activation a expiré. Ouvrez à nouveau le lien reçu par e-mail, ou rendez-vous au bureau d'enregistrement."),
    "activation_key_choice": _l("Choisissez la clé numérique que vous voulez activer."),
    "terms_not_accepted": _l("Veuillez accepter les conditions d'usage."),
    "no_activatable_key": _l("Aucune clé numérique ne peut être activée pour le moment. Rendez-vous au bureau d'enregistrement."),
}

GROUPS = {
    "eid": _l("Clé(s) numérique(s) avec l'eID ou identité numérique"),
    "security_code": _l("Clé(s) numérique(s) avec code de sécurité et nom d'utilisateur + mot de passe"),
    "password": _l("Clé(s) numérique(s) avec nom d'utilisateur + mot de passe"),
    "european": _l("Authentification européenne"),
}

KEYS = {
    "eid": _l("IDENTIFICATION avec un lecteur de cartes eID"),
    "itsme": _l("IDENTIFICATION via itsme"),
    "email_code": _l("IDENTIFICATION avec un code de sécurité envoyé par e-mail"),
    "totp": _l("IDENTIFICATION avec un code de sécurité via une application mobile"),
    "sms_code": _l("IDENTIFICATION avec un code de sécurité via SMS"),
    "token": _l("IDENTIFICATION avec code de sécurité via token"),
    "password": _l("IDENTIFICATION avec vos nom d'utilisateur et mot de passe"),
    "eidas": _l("IDENTIFICATION avec une identification électronique reconnue au plan européen"),
}


# The keys' own names, as "Mes clés numériques" and the notices say them.
KEY_NAMES = {
    "eid": _l("lecteur de cartes eID"),
    "itsme": _l("itsme"),
    "email_code": _l("code de sécurité par e-mail"),
    "totp": _l("code de sécurité via application mobile"),
    "sms_code": _l("code de sécurité via SMS"),
    "token": _l("code de sécurité via token"),
    "password": _l("nom d'utilisateur et mot de passe"),
    "eidas": _l("identification électronique européenne"),
}


def error_message(code: str, params: dict | None = None, extra: dict | None = None) -> str:
    """The citizen's text for an error code; ``extra`` holds a key's own messages."""
    text = str((extra or {}).get(code) or ERRORS.get(code, ERRORS["error"]))
    try:
        return text % (params or {}) if params else text
    except (KeyError, ValueError, TypeError):
        return text
