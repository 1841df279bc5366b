"""The client side shared by drivers and workers: the connection to a node manager, the
reference table and object cache (``core``), submission (``submit``), direct-call lanes
to actors (``lanes``), generators as their owner sees them, and starting an embedded
node manager from a driver (``launch``). Imports only ``common``."""
