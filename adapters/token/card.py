"""The paper token's card: 24 numbered codes, its serial, its fingerprints
and its printable PDF.

A code is 8 characters of an alphabet without look-alikes (no I, L, O, 0, 1),
drawn with ``secrets``: 31^8, about 40 bits, where a guess is stopped after a
handful of tries (the password lockout and the key's own block).  What is kept
of a card is only a keyed fingerprint per position (``Sealer.fingerprint``,
bound to the person, the card and the position) and the order in which
positions will be asked; the codes themselves exist on paper, in the PDF
mailed once, and on the page shown once.
"""
from __future__ import annotations

import secrets
import unicodedata

from flask_babel import gettext as _
from fpdf import FPDF

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CARD_SIZE = 24
CODE_LENGTH = 8
COLUMNS = 3   # of the printed table: 3 x 8


def new_codes() -> list[str]:
    """The card's codes; position n (1-based) is ``codes[n - 1]``."""
    return ["".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH)) for _ in range(CARD_SIZE)]


def new_serial() -> str:
    """The number printed on the card, so a citizen with two cards knows which one is asked for."""
    digits = f"{secrets.randbelow(10 ** 8):08d}"
    return f"{digits[:4]}-{digits[4:]}"


def asking_order() -> list[int]:
    """The order in which positions will be asked, drawn once per card.

    Fixed in advance (not drawn at each login) so that starting the login
    again never brings another position: someone who saw part of a card
    cannot wait for a position they know.
    """
    order = list(range(1, CARD_SIZE + 1))
    secrets.SystemRandom().shuffle(order)
    return order


def normalised(typed: str | None) -> str | None:
    """A typed code in its printed form (capitals, no spaces or dashes), or None when it cannot be one."""
    code = "".join((typed or "").split()).replace("-", "").upper()[:64]
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def owner(person_fedid: str, serial: str, position: int) -> str:
    """What a fingerprint is bound to: a code copied to another person, card or position does not match."""
    return f"{person_fedid}:token:{serial}:{position}"


def fingerprints(sealer, person_fedid: str, serial: str, codes: list[str]) -> dict[str, str]:
    """``{"1": fingerprint, ...}``: what the credential keeps (JSON keys are strings)."""
    return {str(n): sealer.fingerprint(code, owner=owner(person_fedid, serial, n))
            for n, code in enumerate(codes, start=1)}


# What the translations use and Latin-1 lacks (typographic quotes and dashes), and
# letters of names that no decomposition brings back to Latin-1.
_TYPOGRAPHIC = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'",
                              "\u201a": "'", "\u2013": "-", "\u2014": "-", "\u2026": "...",
                              "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Œ": "OE", "œ": "oe", "ı": "i"})


def printable(text: str) -> str:
    """``text`` in the core fonts' Latin-1: typographic marks made plain, other
    letters without their accents (``Ł`` → ``L``), what is left as ``?``."""
    out = []
    for ch in str(text).translate(_TYPOGRAPHIC):
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
            out.append(plain or "?")
    return "".join(out)


def card_pdf(codes: list[str], serial: str, *, holder: str) -> bytes:
    """The printable card (A4), in the current locale's language.

    Helvetica and Courier, the PDF core fonts: nothing is embedded, and their
    Latin-1 covers French, Dutch, German and English once the translations'
    typographic marks are made plain (:func:`printable`).
    """
    pdf = FPDF(format="A4")
    pdf.set_title(printable(_("Carte de codes de sécurité")))   # metadata: never a code
    pdf.set_author("Sésame")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, printable(_("Sésame - Carte de codes de sécurité (token)")), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(0, 7, printable(_("Titulaire : %(name)s", name=holder)), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 7, printable(_("Carte n° %(serial)s", serial=serial)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.multi_cell(0, 6, printable(_("Lors de chaque identification, après votre nom d'utilisateur et votre mot de "
                                     "passe, Sésame vous demande le code d'un numéro de cette carte. Chaque code ne "
                                     "sert qu'une fois.")), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    width = (pdf.w - pdf.l_margin - pdf.r_margin) / COLUMNS
    rows = CARD_SIZE // COLUMNS
    for row in range(rows):
        for column in range(COLUMNS):
            n = column * rows + row + 1   # numbered down each column, as the page shows them
            pdf.set_font("Helvetica", "B", 12)
            pdf.cell(width * 0.3, 11, f"{n}.", border="LTB", align="R")
            pdf.set_font("Courier", "B", 15)
            pdf.cell(width * 0.7, 11, codes[n - 1], border="RTB", align="L")
        pdf.ln(11)
    pdf.ln(5)
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, printable(_("Conservez cette carte en lieu sûr et ne la communiquez à personne : Sésame ne "
                                     "vous demandera jamais vos codes par téléphone ni par e-mail. Quand il ne vous "
                                     "reste que quelques codes, commandez une nouvelle carte dans « Mes clés "
                                     "numériques ».")), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())

