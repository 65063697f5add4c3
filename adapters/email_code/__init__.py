"""Security code by e-mail (level 200): username + password, then a six-digit
code sent to the address the person activated (guide: "IDENTIFICATION avec un
code de sécurité envoyé par e-mail").  Everything but the channel is
``adapters.sent_code``."""
from __future__ import annotations

from pathlib import Path

from flask_babel import gettext as _

from adapters.base import Group
from adapters.contacts import email_address
from adapters.masking import mask_email
from adapters.sent_code import SentCodeKey


class EmailCodeAdapter(SentCodeKey):
    id = "email_code"
    group = Group.SECURITY_CODE
    level = 200
    levels = (200, 200)
    ports = SentCodeKey.ports | {"mailer"}
    template_folder = Path(__file__).with_name("templates")
    activate_template = "email_code/activate.html"
    address_error = "bad_email"

    def read_address(self, typed: str) -> str | None:
        return email_address(typed)

    def mask(self, address: str) -> str:
        return mask_email(address)

    def known_address(self, contact) -> str | None:
        return contact.mail

    def save_address(self, ports, person_fedid: str, address: str) -> None:
        ports.people.set_mail(person_fedid, address)

    def deliver(self, ports, to: str, code: str, *, registration: bool) -> None:
        # gettext at send time: the request's locale is the citizen's language.
        if registration:
            subject = _("Votre code d'enregistrement Sésame")
            first = _("Votre code d'enregistrement Sésame : %(code)s", code=code)
            why = _("Saisissez-le pour activer la clé numérique « code de sécurité par e-mail ». "
                    "Si vous n'avez pas demandé ce code, ignorez ce message.")
        else:
            subject = _("Votre code de sécurité Sésame")
            first = _("Votre code de sécurité Sésame : %(code)s", code=code)
            why = _("Si vous n'êtes pas en train de vous identifier, quelqu'un connaît votre mot de passe : "
                    "changez-le sans attendre.")
        text = "\n\n".join([
            _("Bonjour,"), first,
            _("Ce code reste valable %(minutes)s minutes. Ne le communiquez à personne : Sésame ne vous le "
              "demandera jamais par téléphone ni par e-mail.", minutes=self.valid_minutes),
            why,
            _("Ceci est un message automatique de Sésame : n'y répondez pas."),
        ])
        ports.mailer.send(to=to, subject=subject, text=text)
