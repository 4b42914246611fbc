"""The ``suyuan`` command: JSON on stdout, one clear sentence on stderr when refused.

Exit codes: 0 done; 1 an audit or verification found problems; 2 refused (bad input,
not authorised, not found, not set up, a damaged key file, the database failing) or wrong
usage; 3 stopped because stdout was closed while appending (what landed stays, and is
witnessed). A reading command whose stdout is closed (``| head``) just stops, with 0.

Each command group is a module here with its ``cmd_…`` functions and the ``add_…``
functions that add its subcommands to the parser; ``COMMANDS`` lists them in the order
``suyuan --help`` shows them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ledger.core.errors import LedgerError
from ledger.log.home import Home
from ledger.log.sequencer import Ledger
from ledger.store.db import DEFAULT_URL, Store
from ledger.store.failures import storage_error
from tools.cli import (
    audit,
    ceb,
    compliance,
    epcis,
    labels,
    party,
    proofs,
    serve,
    setup,
    submit,
    tiles,
    trace,
    witness,
)
from tools.cli.common import EXIT_STOPPED, Commands, silence_stdout

COMMANDS: tuple[Callable[[Commands], None], ...] = (
    setup.add_init,
    setup.add_demo,
    serve.add_serve,
    tiles.add_tiles,
    setup.add_token,
    serve.add_agent,
    labels.add_scans,
    witness.add_witness,
    proofs.add_monitor,
    setup.add_keygen,
    party.add_party,
    submit.add_sign,
    submit.add_submit,
    submit.add_entry,
    submit.add_shred,
    trace.add_trace,
    audit.add_reindex,
    proofs.add_checkpoint,
    proofs.add_log_key,
    proofs.add_prove,
    proofs.add_bundle,
    proofs.add_verify,
    audit.add_audit,
    compliance.add_credit,
    compliance.add_stats,
    epcis.add_epcis,
    ceb.add_ceb,
    compliance.add_findings,
    compliance.add_list,
    compliance.add_tax,
    labels.add_qr,
)

# Commands whose entries have landed by the time they print; see _stdout_closed.
_APPENDS = {
    "init",
    "party register",
    "party rotate",
    "party revoke",
    "shred",
    "list load",
    "epcis import",
    "demo",
    "party delegate",
}


def _ledger(home: Home) -> Ledger:
    """The ledger a command opens. Commands reach it through this package (see
    common.open_ledger), so whoever replaces it here replaces it for all of them."""
    return Ledger(Store(), note_signer=home.note_signer_if_any(), log_key=home.published_log_key())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="suyuan", description=(__doc__ or "").split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    home = Home()
    try:
        code: int = args.fn(args, home)
        sys.stdout.flush()  # here, not at exit, where a closed stdout could not be told
    except LedgerError as e:
        return _refused(e)
    except BrokenPipeError:
        return _stdout_closed(args)
    except Exception as e:
        storage = storage_error(e, where=_database_name())
        if storage is not None:
            return _refused(storage)
        if not isinstance(e, OSError):
            raise  # a bug, not the database failing: its traceback is what helps
        kind = "not_found" if isinstance(e, FileNotFoundError) else "io"
        where = f" {e.filename}" if e.filename else ""
        print(f"error [{kind}]: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    return code


def _refused(e: LedgerError) -> int:
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    print(e.diagnostics(), file=sys.stderr)
    return 2


def _stdout_closed(args: argparse.Namespace) -> int:
    """Stdout closed (EPIPE) before the output was all written. A reading command just
    stops, as filters do under ``| head``; one that appended says so, since the receipts
    of what landed were not all seen (``submit`` stops between batches on its own)."""
    silence_stdout()
    sub = (
        getattr(args, "party_command", None)
        or getattr(args, "list_command", None)
        or getattr(args, "epcis_command", None)
    )
    if " ".join(filter(None, (args.command, sub))) not in _APPENDS:
        return 0
    print(
        "stopped: stdout was closed before the output was all written; what was appended "
        "stays appended (`suyuan checkpoint` shows the ledger's size)",
        file=sys.stderr,
    )
    return EXIT_STOPPED


def _database_name() -> str:
    url = os.environ.get("SUYUAN_DB") or DEFAULT_URL
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # a URL that does not parse was refused already
        return "SUYUAN_DB"
