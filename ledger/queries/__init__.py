"""Reads over the log: trace, chain audit, page facts, finding listings, EPCIS queries,
documents in and out, credit, statistics, scans."""
