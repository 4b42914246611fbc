"""Child process for crash and concurrency tests: appends batches, prints each receipt.

Usage: python -m tests.appender URL HOME KEYNAME PARTY START BATCHES BATCH_SIZE
A receipt line is printed (and flushed) only after its batch has committed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ledger.core.statements import sign_one
from ledger.log.home import Home
from ledger.log.sequencer import Ledger
from ledger.store.db import Store


def main() -> None:
    url, home, keyname, party, start, batches, size = sys.argv[1:8]
    h = Home(Path(home))
    key = h.keys.load(keyname)
    led = Ledger(Store(url), note_signer=h.note_signer_if_any())
    n = int(start)
    for _ in range(int(batches)):
        envs = []
        for _ in range(int(size)):
            body = {
                "type": "ObjectEvent",
                "eventTime": "2026-11-27T13:05:00+08:00",
                "eventTimeZoneOffset": "+08:00",
                "action": "ADD",
                "bizStep": "commissioning",
                "epcList": [f"https://id.gs1.org/01/09506000134352/21/{n}"],
            }
            envs.append(
                sign_one(kind="event", signer=party, key=key, body=body, issued="2026-11-27T13:05:00+08:00")
            )
            n += 1
        receipts = led.append_batch(envs)
        sys.stdout.write(
            "".join(
                json.dumps({"seq": r.seq, "statementHash": r.statement_hash.hex()}) + "\n" for r in receipts
            )
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
