"""Everything that touches the world: the send gate, providers, the CRM and the store."""
