"""Time-clock punches (Portaria MTP 671/2021, REP-P): ingestion, the ARP ledger, AFD and Redshift.

Modules: ``identity`` (CPF), ``afd`` (record layout, CRC-16/KERMIT, SHA-256 chain),
``schema`` / ``admin`` / ``ledger`` (the ERP tables), ``intake`` (per-punch
validation for the API), ``signing`` (detached CAdES), ``verify`` (``tornado
ponto verify-afd``), ``export`` (Redshift feed) and ``handlers`` (the tasks).
"""

__version__ = "1.0.0"
