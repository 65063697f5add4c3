"""Security code by SMS (level 300): username + password, then a six-digit
code sent to the mobile number the person activated (E.164; a number typed
without its country code is read in ``default_country``).  Everything but the
channel is ``adapters.sent_code``."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from flask_babel import gettext as _

from adapters.base import Group
from adapters.contacts import mobile_number
from adapters.masking import mask_phone
from adapters.sent_code import SentCodeKey, SentCodeSettings
from adapters.settings import SettingsError

COUNTRY_CODE = re.compile(r"^\+[1-9][0-9]{0,2}$")


class SmsCodeAdapter(SentCodeKey):
    id = "sms_code"
    group = Group.SECURITY_CODE
    level = 300
    levels = (300, 300)
    ports = SentCodeKey.ports | {"sms"}
    template_folder = Path(__file__).with_name("templates")
    activate_template = "sms_code/activate.html"
    address_error = "bad_phone"

    @dataclass(frozen=True)
    class Settings(SentCodeSettings):
        default_country: str = "+32"   # how a number typed without its country code is read

        def __post_init__(self) -> None:
            super().__post_init__()
            if not COUNTRY_CODE.match(self.default_country):
                raise SettingsError(f"[keys.sms_code] default_country must look like +32, "
                                    f"not {self.default_country!r}")

    def read_address(self, typed: str) -> str | None:
        return mobile_number(typed, self.settings.default_country)

    def mask(self, address: str) -> str:
        return mask_phone(address)

    def known_address(self, contact) -> str | None:
        # The record may hold a number typed any way: shown in E.164 when it reads as one.
        return self.read_address(contact.phone) or contact.phone if contact.phone else None

    def save_address(self, ports, person_fedid: str, address: str) -> None:
        ports.people.set_phone(person_fedid, address)

    def deliver(self, ports, to: str, code: str, *, registration: bool) -> None:
        # Short, one SMS; gettext at send time: the request's locale is the citizen's language.
        if registration:
            text = _("Sésame : votre code d'enregistrement est %(code)s (valable %(minutes)s min). "
                     "Ne le communiquez à personne.", code=code, minutes=self.valid_minutes)
        else:
            text = _("Sésame : votre code de sécurité est %(code)s (valable %(minutes)s min). "
                     "Ne le communiquez à personne.", code=code, minutes=self.valid_minutes)
        ports.sms.send(to=to, text=text)
