"""The countries a citizen may choose on the European key's page: the member
states of the EU and the EEA whose eID reaches Belgium through the eIDAS
network (Belgium itself is left out: Belgians use their own keys).  Names in
French (msgids); the lead's translations give nl, de and en."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

COUNTRIES = {
    "AT": _l("Autriche"), "BG": _l("Bulgarie"), "CY": _l("Chypre"), "CZ": _l("Tchéquie"),
    "DE": _l("Allemagne"), "DK": _l("Danemark"), "EE": _l("Estonie"), "EL": _l("Grèce"),
    "ES": _l("Espagne"), "FI": _l("Finlande"), "FR": _l("France"), "HR": _l("Croatie"),
    "HU": _l("Hongrie"), "IE": _l("Irlande"), "IS": _l("Islande"), "IT": _l("Italie"),
    "LI": _l("Liechtenstein"), "LT": _l("Lituanie"), "LU": _l("Luxembourg"), "LV": _l("Lettonie"),
    "MT": _l("Malte"), "NL": _l("Pays-Bas"), "NO": _l("Norvège"), "PL": _l("Pologne"),
    "PT": _l("Portugal"), "RO": _l("Roumanie"), "SE": _l("Suède"), "SI": _l("Slovénie"),
    "SK": _l("Slovaquie"),
}
