"""The JSON-LD context that gives a signed event its meaning, and one ``@context`` for a
document that writes several events out again.

An import keeps the document's ``@context`` in its signed ``document`` record (the event
bodies stay exactly the events); ``kept_context`` finds it again for an event, and
``in_context`` builds the context of an export so that every event expands to the same
RDF as it did in the document it was signed in. Pure: no I/O beyond reading the CBEC
vocabulary shipped with the schemas once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import orjson

from ledger.core.records import DocumentRecord as DocumentRecord
from ledger.epcis.validation import load_schema

EPCIS_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
CBEC_VOCABULARY: Final = "cbec-vocabulary.jsonld"
# What an event signed without a kept context (before contexts were kept, or submitted as a
# statement) means by a prefix the ledger does not know: a namespace of the ledger's own.
EXTENSION_NAMESPACE: Final = "urn:suyuan:ext:{prefix}#"
# Prefixes the standard EPCIS 2.0 context defines or that are absolute IRIs' schemes: an
# event without a kept context is exported without binding them, as before.
STANDARD_PREFIXES: Final = frozenset(
    {"epcis", "cbv", "cbvmda", "gs1", "rdf", "rdfs", "owl", "xsd", "dcterms", "sh", "schema"}
)
URI_SCHEMES: Final = frozenset({"http", "https", "urn", "ni", "tag", "mailto", "did", "data", "file", "ftp"})
# Context keywords that change how every key or value of an event expands.
_KEYWORDS: Final = frozenset({"@vocab", "@base", "@language", "@direction"})
# Keywords that make a context object act beyond its own definitions (another context
# imported, or not reaching nested objects): such an object is handled as a remote context.
_OPAQUE: Final = frozenset({"@import", "@propagate"})
_PREFIXED: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-_]*):(?!//)")


class SignedEvent(NamedTuple):
    """An event entry as an export reads it."""

    seq: int
    signer: str
    issued: str
    body: Mapping[str, Any]
    event_hash: str


class InContext(NamedTuple):
    """Signed events ready to be written in one JSON-LD document.

    ``context`` is the document's ``@context`` (GS1's EPCIS 2.0 context first). ``events``
    are the signed bodies, unchanged, except where the document's context cannot give an
    event the meaning it was signed with (two documents bound one prefix to two namespaces):
    that event carries an ``@context`` of its own, and ``signed_contexts`` maps its index to
    the ``@context`` its signed body had (None: it had none), so the signed body can be had
    back by putting that one in its place.
    """

    context: list[Any]
    events: list[dict[str, Any]]
    signed_contexts: dict[int, Any]


@functools.cache
def cbec_context() -> Mapping[str, Any]:
    """The part of the CBEC vocabulary's ``@context`` that events use: the ``cbec`` prefix and
    the ``cbec:`` terms whose members it maps (``cbec:orderInfo`` → ``goods``, ``paid``, …).
    The ledger reads every body as if this followed the EPCIS context (schemas/README.md)."""
    vocab = load_schema(CBEC_VOCABULARY)["@context"]
    return {k: v for k, v in vocab.items() if k == "cbec" or k.startswith("cbec:")}


def kept_context(event: SignedEvent, records: Iterable[DocumentRecord]) -> Any | None:
    """The ``@context`` of the document ``event`` was signed in, or None.

    That document's record is the first one after the event that its signer signed with it
    (the same ``issued`` time: an import signs the events and the record together) and that
    lists its hash. When there is none, that import's record was the same as an earlier one
    of the signer's and was not appended again (GS1's two 9.6.4 examples are one document to
    a record: the same header and event hashes): the signer's earliest record listing the
    hash. Another party's record never decides what an entry means, nor does a later import
    of the same event in another document. None for an event submitted as a statement and
    for one imported before records kept contexts (a record without ``context``).
    """
    mine = [r for r in records if r.signer == event.signer and event.event_hash in r.body.get("events", ())]
    batch = [r for r in mine if r.seq > event.seq and r.issued == event.issued]
    found = min(batch) if batch else min((r for r in mine if r.seq < event.seq), default=None)
    return found.body.get("context") if found is not None else None


class _Want(NamedTuple):
    """What an event needs after the EPCIS context: its contexts, then (for an event without
    a kept context) the ledger's own namespace for each prefix it uses."""

    parts: list[Any]
    fallback: dict[str, str]


def _listed(context: Any) -> list[Any]:
    return list(context) if isinstance(context, list) else [context]


def _want(body: Mapping[str, Any], kept: Any | None, used: set[str]) -> _Want:
    base: list[Any] = [dict(cbec_context())] if "cbec" in used else []
    if kept is not None:
        return _Want(base + [p for p in _listed(kept) if p != EPCIS_CONTEXT], {})
    prefixes: set[str] = set()
    _key_prefixes(body, prefixes)
    return _Want(
        base,
        {
            p: EXTENSION_NAMESPACE.format(prefix=p)
            for p in sorted(prefixes - STANDARD_PREFIXES - URI_SCHEMES - {"cbec"})
        },
    )


def _key_prefixes(value: object, out: set[str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == "@context":
                continue  # an event's own context declares terms; it uses none
            m = _PREFIXED.match(k)
            if m is not None:
                out.add(m[1])
            _key_prefixes(v, out)
    elif isinstance(value, list):
        for v in value:
            _key_prefixes(v, out)


def terms_used(body: Mapping[str, Any]) -> set[str]:
    """Every term a context could define that could change how ``body`` expands: its keys,
    its string values (a value typed ``@vocab`` may be a term), the prefix of each, and the
    keywords that apply to all of them. More than it needs, never less."""
    out = set(_KEYWORDS)

    def walk(value: object) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if k == "@context":
                    continue
                out.add(k)
                if (m := _PREFIXED.match(k)) is not None:
                    out.add(m[1])
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            out.add(value)
            if (m := _PREFIXED.match(value)) is not None:
                out.add(m[1])

    walk(body)
    return out


class _Definitions(NamedTuple):
    terms: dict[str, Any]  # term -> its definition, the last context defining it winning
    remote: list[Any]  # contexts known only by IRI (or null): what they define is not known


def _definitions(parts: Iterable[Any]) -> _Definitions:
    terms: dict[str, Any] = {}
    remote: list[Any] = []
    for p in parts:
        if isinstance(p, Mapping) and not _OPAQUE.intersection(p):
            terms.update(p)
        else:
            remote.append(p)
    return _Definitions(terms, remote)


def _same(a: Any, b: Any) -> bool:
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


def _differing(want: _Definitions, have: _Definitions, terms: Iterable[str]) -> list[str]:
    """The terms among ``terms`` that ``have`` defines otherwise than ``want`` (or at all)."""
    return [
        t
        for t in terms
        if (t in want.terms) != (t in have.terms)
        or (t in want.terms and not _same(want.terms[t], have.terms[t]))
    ]


def _parts_of(want: _Want) -> list[Any]:
    return want.parts + ([want.fallback] if want.fallback else [])


def in_context(
    events: Sequence[SignedEvent],
    records: Iterable[DocumentRecord],
    *,
    extra: Mapping[str, Any] | None = None,
) -> InContext:
    """``events`` in one document whose ``@context`` gives each the meaning it was signed with.

    The context is GS1's EPCIS 2.0 context, then the CBEC vocabulary's terms if an event uses
    ``cbec:``, then the kept contexts of the documents the events were signed in (each once,
    in event order), then the ledger's namespace for prefixes that events without a kept
    context use, then ``extra`` (an exporter's own terms). An event whose terms that context
    would define otherwise than its own document did gets its document's context itself.
    """
    records = list(records)
    used = [terms_used(e.body) for e in events]
    wants = [_want(e.body, kept_context(e, records), u) for e, u in zip(events, used, strict=True)]
    own = [_definitions(_parts_of(w)) for w in wants]
    tail = [dict(extra)] if extra else []
    shared: list[Any] = []
    fallback: dict[str, str] = {}
    placed: list[int] = []
    have = _definitions(tail)
    # A context known only by its IRI may define anything, so it is shared only when every
    # event has the very same context; otherwise its events carry it themselves, where it
    # reaches no other event.
    uniform = all(_parts_of(w) == _parts_of(wants[0]) for w in wants)
    for i, w in enumerate(wants):
        if own[i].remote and not uniform:
            continue
        new_parts = [p for p in w.parts if p not in shared]
        new_fallback = {**fallback, **w.fallback}
        c_parts = shared + new_parts
        candidate = _definitions(c_parts + ([new_fallback] if new_fallback else []) + tail)
        changed = set(_differing(have, candidate, set(have.terms) | set(candidate.terms)))
        fits = not _differing(own[i], candidate, used[i]) and not any(
            _differing(own[j], candidate, used[j] & changed) for j in placed
        )
        if fits:
            shared, fallback, have = c_parts, new_fallback, candidate
            placed.append(i)
    context = [EPCIS_CONTEXT, *shared, *([fallback] if fallback else []), *tail]
    out: list[dict[str, Any]] = []
    signed_contexts: dict[int, Any] = {}
    alone = set(range(len(events))) - set(placed)
    for i, e in enumerate(events):
        if i not in alone:
            out.append(dict(e.body))
            continue
        signed = e.body.get("@context")
        # Terms the shared context defines and this event's document did not: plain terms,
        # prefixes and keywords are undefined (null) before its context, which may define
        # them again (a remote one too); a compact IRI defined as a term is given back its
        # plain expansion after it, once its prefix is what its document made it.
        stray = [t for t in _differing(own[i], have, used[i]) if t not in own[i].terms]
        before = {t: None for t in stray if _PREFIXED.match(t) is None}
        after = {t: _expanded(t, own[i]) for t in stray if t not in before}
        local = (
            ([before] if before else [])
            + _parts_of(wants[i])
            + ([after] if after else [])
            + (_listed(signed) if signed is not None else [])
        )
        out.append({"@context": local, **{k: v for k, v in e.body.items() if k != "@context"}})
        signed_contexts[i] = signed
    return InContext(context, out, signed_contexts)


def _expanded(term: str, own: _Definitions) -> dict[str, str]:
    """A definition of the compact IRI ``term`` as what it means where no term ``term`` is
    defined: its prefix's namespace plus the rest, or, with its prefix unbound, the absolute
    IRI it is written as."""
    m = _PREFIXED.match(term)
    assert m is not None  # only compact IRIs are given here
    namespace = own.terms.get(m[1])
    if isinstance(namespace, Mapping):
        namespace = namespace.get("@id")
    return {"@id": namespace + term[m.end() :] if isinstance(namespace, str) else term}


def namespaces(context: Sequence[Any]) -> dict[str, str]:
    """Prefix → namespace IRI of the plain prefix definitions in ``context`` (later winning):
    what XML needs to name extension elements."""
    out: dict[str, str] = {}
    for part in context:
        if isinstance(part, Mapping):
            out.update(
                {
                    k: v
                    for k, v in part.items()
                    if isinstance(v, str) and not k.startswith("@") and ":" not in k
                }
            )
    return out
