"""``python -m clientreg_pulumi.plugin <engine address>``: what ``pulumi-resource-clientreg`` runs."""

import sys

from .server import main

sys.exit(main())
