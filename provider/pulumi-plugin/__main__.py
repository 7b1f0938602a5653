"""``pulumi-resource-clientreg`` run from this folder by the Python language host (PulumiPlugin.yaml)."""

from clientreg_pulumi.plugin.server import main

raise SystemExit(main())
