"""Fencing by checkpoint: a ledger never signs a checkpoint that is not an extension of the
newest cosigned checkpoint it can see.

After a failover the promoted standby appends and its witnesses cosign what it signs. An
old primary that comes back (restarted by a careless hand, or a network partition healed)
still holds the checkpoint key, and a process still configured with it as SUYUAN_DB would
append there: a second history, signed by the same key — a fork. Before signing, the
ledger reads the newest cosigned checkpoint of every database it can see (its read
replicas, SUYUAN_DB_READ: configure every ledger process with all members of the
cluster) and refuses (``fenced``) unless the tree it would sign is at least that big and
has that checkpoint's root at that size. Its own database needs no look: every checkpoint
in it was checked against the one before it when it was signed.

Checkpoints that do not verify with this ledger's own key are not its log's, and fence
nothing (they are logged). A replica that does not answer fences nothing either: fencing
is what the ledger can see, and the README's failover procedure makes sure it sees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from ledger.core.errors import ConfigError, NoteError
from ledger.core.note import Checkpoint, NoteVerifier
from ledger.store.db import Store

log = logging.getLogger("suyuan")


class Fenced(ConfigError):
    """This database is not the log's primary any more: it is behind, or off, the newest
    cosigned checkpoint another member of the cluster holds."""

    code = "fenced"


class Cosigned(NamedTuple):
    size: int
    root: bytes
    where: str  # the database that holds it ("read replica 2 of SUYUAN_DB_READ")


def cosigned_elsewhere(store: Store, verifier: NoteVerifier) -> list[Cosigned]:
    """The newest cosigned checkpoint of each replica, those that verify with ``verifier``."""
    out = []
    for got in store.newest_cosigned_on_replicas():
        try:
            verifier.verify(got.note)
            cp = Checkpoint.parse(got.note.split("\n\n", 1)[0] + "\n")
        except NoteError as e:
            log.warning(
                "fencing: the checkpoint of size %d on %s is not this log's (%s)",
                got.size,
                got.where,
                e.message,
            )
            continue
        out.append(Cosigned(cp.size, cp.root, got.where))
    return out


def check_extends(seen: list[Cosigned], *, size: int, root_at: Callable[[int], bytes]) -> None:
    """Refuse (``Fenced``) to sign a tree of ``size`` leaves whose root at a smaller size is
    ``root_at(n)`` unless it extends every checkpoint of ``seen``."""
    for c in seen:
        if size < c.size:
            log.error(
                "fenced: %s holds a cosigned checkpoint of size %d; this log would reach %d",
                c.where,
                c.size,
                size,
            )
            raise Fenced(
                f"not appended: a checkpoint of size {c.size} on {c.where} is cosigned by "
                f"witnesses, and this database's log would only reach size {size}; it is "
                "behind, so it is no longer the primary (a standby was promoted?) — point "
                "SUYUAN_DB at the current primary, and rebuild this server as its standby"
            )
        if root_at(c.size) != c.root:
            log.error("fenced: %s holds a cosigned checkpoint of size %d with another root", c.where, c.size)
            raise Fenced(
                f"not appended: this database's log has another root at size {c.size} than "
                f"the checkpoint cosigned on {c.where}: its history forked from the cluster's; "
                "point SUYUAN_DB at the current primary, and rebuild this server as its "
                "standby (pg_rewind or pg_basebackup)"
            )
