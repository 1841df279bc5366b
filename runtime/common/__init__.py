"""What every process of the runtime shares: ids, errors, messages and their framing,
serialization, connections, the shared-memory arena, the state records, the registry of
runtimes, labels. Imports nothing from ``client``, ``worker`` or the node manager."""
