"""The EPCIS 2.0 domain: event validation, stage classification, the event hash, XML and JSON-
LD, master data, CEB messages, each statement kind's body shape, and the trace rows an event
adds."""
