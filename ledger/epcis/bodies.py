"""The shape of every statement kind's body, checked with no registry state: the registry's
own kinds (``ledger.core.registry.check_body``) and the EPCIS ones — a document record, a
master-data element. The append path, the verifier and the audit all ask here."""

from __future__ import annotations

from ledger.core import registry
from ledger.core.statements import Prepared
from ledger.epcis import masterdata
from ledger.epcis.event_hash import check_document_record


def check_body(p: Prepared) -> None:
    """Raise ``MalformedInput`` if ``p``'s body is not shaped as its kind's must be."""
    registry.check_body(p)
    if p.kind == "document":
        check_document_record(p.body)
    elif p.kind == "masterdata":
        masterdata.check_body(p.body)
