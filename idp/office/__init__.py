"""The registration office (bureau d'enregistrement local, docs/office.md):
people without a Belgian eID are registered in person by an officer, who hands
them an activation code on paper; the activation e-mail's link and that code
let them set up a key once, without any prior login.

Apart from Flask: ``bis`` (identifiers of the national number's shape),
``codes`` (activation codes: generation and HMAC), ``forms`` (what an officer
types, checked), ``registry`` (offices, officers, registrations, codes, in the
database, each change in one transaction).
"""
