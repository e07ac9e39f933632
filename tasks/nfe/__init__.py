"""NF-e (nota fiscal eletrônica, layout 4.00): the pure-Python foundation of the NF-e tasks.

Modules: ``documents`` (CPF and CNPJ check digits, the alphanumeric CNPJ included),
``access_key`` (the 44-character chave de acesso: building, check digit, parsing) and
``invoice`` (the invoice the ERP submits, validated strictly from JSON with the business
rules the XSD does not carry).

Later steps add the XML builder, XSD validation, signing, transmission to SEFAZ and the
task handlers; nothing here does I/O.
"""

__version__ = "0.1.0"
