"""Notices to a person when one of their keys is activated, changed or removed
(issue: "an e-mail ... whenever a key is activated, changed or removed, in
their language"): someone who did not do it learns it at once.

Sent in the person's preferred language (``force_locale``); a notice that
cannot be delivered is logged and never undoes the change it reports.
"""
from __future__ import annotations

import logging

from flask_babel import force_locale, gettext as _

from idp.messaging import DeliveryFailed

log = logging.getLogger("sesame.notices")

EVENTS = ("activated", "changed", "removed")


class Notices:
    def __init__(self, mailer, contacts) -> None:
        self.mailer = mailer
        self.contacts = contacts

    def key_event(self, person_fedid: str, key: str, event: str) -> bool:
        """Tell the person; True when the mail went."""
        if event not in EVENTS:
            raise ValueError(f"unknown key event {event!r}")
        contact = self.contacts.get(person_fedid)
        if self.mailer is None or contact is None or not contact.mail:
            return False
        from idp.messages import KEY_NAMES

        with force_locale(contact.lang):
            name = str(KEY_NAMES.get(key, key))
            subject, text = self._wording(event, name, contact.name)
        try:
            self.mailer.send(to=contact.mail, subject=subject, text=text)
        except DeliveryFailed as exc:
            log.warning("notice %s of %s not sent: %s", event, key, exc)
            return False
        return True

    @staticmethod
    def _wording(event: str, name: str, person: str) -> tuple[str, str]:
        if event == "activated":
            subject = _("Votre clé numérique « %(key)s » a été activée", key=name)
        elif event == "changed":
            subject = _("Votre clé numérique « %(key)s » a été modifiée", key=name)
        else:
            subject = _("Votre clé numérique « %(key)s » a été supprimée", key=name)
        text = "\n\n".join([
            _("Bonjour %(name)s,", name=person),
            subject + ".",
            _("Si vous n'êtes pas à l'origine de ce changement, identifiez-vous avec votre carte eID ou itsme, "
              "vérifiez vos clés dans « Mes clés numériques » et contactez le service d'assistance."),
            _("Ceci est un message automatique de Sésame : n'y répondez pas."),
        ])
        return subject, text
