"""The clientreg Kubernetes operator: a thin adapter around :mod:`clientreg.engine`.

Cluster state (OAuthClient, AuthorizationServer, their Secrets) becomes engine inputs; engine results
become Secrets, status conditions and Events. Nothing about OAuth lives here.
"""
