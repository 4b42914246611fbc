"""DataLoaders: the fields of a list of entries, parties or proofs are read in one batch,
so a journey's cost in SQL statements does not grow with its number of events."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool
from strawberry.dataloader import DataLoader

from ledger.core.private import Viewer
from ledger.core.registry import KeyRecord, PartyRecord
from ledger.log.sequencer import Entry, InclusionProof, Ledger, PrivateView
from ledger.queries import trace
from ledger.queries.described import Described, described


class Loaders:
    """One set per request (per connection for subscriptions); entries never change once
    written, so caching them for that long is safe."""

    def __init__(self, ledger: Ledger, viewer: Viewer) -> None:
        self.ledger, self.viewer = ledger, viewer
        self.entry: DataLoader[int, Entry | None] = DataLoader(load_fn=self._entries)
        self.private: DataLoader[int, PrivateView | None] = DataLoader(load_fn=self._private)
        self.stage: DataLoader[int, str | None] = DataLoader(load_fn=self._stages)
        self.party: DataLoader[str, PartyRecord | None] = DataLoader(load_fn=self._parties)
        self.keys: DataLoader[str, list[KeyRecord]] = DataLoader(load_fn=self._keys)
        self.masterdata: DataLoader[str, Described | None] = DataLoader(load_fn=self._masterdata)
        self._proofs: dict[int, DataLoader[int, InclusionProof]] = {}
        # Not cached: a subscription keeps its loaders while the ledger grows. Loads in one
        # tick (every entry of a list asking for its proof "now") still share one read.
        self.size: DataLoader[int, int] = DataLoader(load_fn=self._size, cache=False)

    def proof(self, size: int) -> DataLoader[int, InclusionProof]:
        """Inclusion proofs against the tree of ``size``, batched per size."""
        loader = self._proofs.get(size)
        if loader is None:

            async def load(seqs: list[int]) -> Sequence[InclusionProof]:
                got = await run_in_threadpool(self.ledger.inclusion_proofs, seqs, size)
                return [got[s] for s in seqs]

            loader = self._proofs[size] = DataLoader(load_fn=load)
        return loader

    async def _size(self, keys: list[int]) -> Sequence[int]:
        n = await run_in_threadpool(self.ledger.size)
        return [n for _ in keys]

    async def _entries(self, seqs: list[int]) -> Sequence[Entry | None]:
        got = await run_in_threadpool(self.ledger.entries_found, seqs)
        return [got.get(s) for s in seqs]

    async def _stages(self, seqs: list[int]) -> Sequence[str | None]:
        got = await run_in_threadpool(trace.stages_of, self.ledger.store, seqs)
        return [got.get(s) for s in seqs]

    async def _private(self, seqs: list[int]) -> Sequence[PrivateView | None]:
        found = [e for e in await self.entry.load_many(seqs) if e is not None]
        views = await run_in_threadpool(self.ledger.private_views, found, self.viewer)
        return [views.get(s) for s in seqs]

    async def _parties(self, ids: list[str]) -> Sequence[PartyRecord | None]:
        got = await run_in_threadpool(self.ledger.party_records, ids)
        return [got.get(i) for i in ids]

    async def _masterdata(self, codes: list[str]) -> Sequence[Described | None]:
        got = await run_in_threadpool(described, self.ledger.store, codes)
        return [got.get(c) for c in codes]

    async def _keys(self, ids: list[str]) -> Sequence[list[KeyRecord]]:
        got = await run_in_threadpool(self.ledger.party_keys, ids)
        return [got.get(i, []) for i in ids]
