"""clientreg: declarative OAuth clients through Dynamic Client Registration."""
