"""``clientreg``: apply a folder of OAuthClient documents against an AS, with local state.

Exit codes: 0 all Ready; 1 other failure; 2 invalid input; 3 waiting for a dependency (a Secret);
4 the AS refused or answered nonsense; 5 the AS could not be reached; 6 local state unusable;
7 a client needs a person (RegistrationAccessTokenRevoked).
Only ``credentials`` (and ``token --show``) print a secret: the user asked for it by name.

One module per responsibility: ``apply`` (apply, plan, over :mod:`.runner`), ``show`` (get,
credentials, token), ``manage`` (rotate, delete), ``adopt``, ``servers`` (discover, check-server, dev-server);
``_common`` holds the options, the consoles and state location.
"""

from __future__ import annotations

import logging
import sys

import click

from ..errors import describe
from ._common import ADDRESS_POLICY
from .adopt import adopt
from .apply import apply, plan_cmd
from .manage import delete, rotate
from .servers import check_server, dev_server, discover
from .show import credentials, get, token


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log progress to stderr (-vv for HTTP detail).")
@click.version_option(package_name="clientreg")
def main(verbose: int) -> None:
    """Declarative OAuth clients through Dynamic Client Registration (RFC 7591/7592)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose < 2:
        logging.getLogger("httpx").setLevel(logging.WARNING)


for _command in (apply, plan_cmd, get, credentials, token, rotate, delete, adopt, discover, check_server,
                 dev_server):
    main.add_command(_command)

__all__ = ["ADDRESS_POLICY", "describe", "main"]
