"""The log: the sequencer, reindex, audit, bundles, monitors, witnesses (cosigner and
gatherer), tiles export, admission, the one verifier, customs import, the operator's home
and key store."""
