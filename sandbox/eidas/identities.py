"""The sandbox node's people: citizens of three countries with an eIDAS
identifier each (``CC/BE/...``: their country, then Belgium, the receiving
country; eIDAS SAML Attribute Profile §2.2.3).  Invented people."""
from __future__ import annotations


def _person(country: str, local: str, given: str, family: str, birth: str) -> dict:
    return {"country": country, "identifier": f"{country}/BE/{local}", "given_name": given,
            "family_name": family, "birth_date": birth}


# Key: what the sandbox page posts.
IDENTITIES = {
    "de-anna": _person("DE", "DE-4F2A9C11", "Anna", "Schneider", "1988-04-12"),
    "de-lukas": _person("DE", "DE-7B31D082", "Lukas", "Weber", "1975-09-30"),
    "nl-sanne": _person("NL", "NL-123456782", "Sanne", "de Vries", "1993-01-21"),
    "it-giulia": _person("IT", "IT-TINIT-RSSGLI90A41H501X", "Giulia", "Rossi", "1990-01-01"),
}
