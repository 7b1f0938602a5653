"""``pulumi-resource-clientreg``: clientreg as a Pulumi provider plugin for every language (TypeScript, Go,
Python, C#, Pulumi YAML), next to the dynamic provider that serves Python programs only.

The plugin speaks Pulumi's gRPC provider protocol (:mod:`.server`) and runs the dynamic provider's steps
(:mod:`.operations`), so both front ends share one copy of the logic and the core's one reconcile loop.
Its package schema (:mod:`.schema`, committed as ``schema.json``) is generated from the core's spec models.
"""
