"""Test support: real components (servers, API server, Pulumi engine) built into a cache."""
