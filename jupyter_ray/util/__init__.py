"""Utilities (ActorPool, queues) built on the public API."""
