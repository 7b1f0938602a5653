"""The Kubernetes layer shared by the clientreg front ends that write to a cluster: the operator
(``clientreg_operator``) and the Pulumi provider's ``kubernetes_secret`` option (``clientreg_pulumi``).

- :mod:`.conventions`: the names clientreg puts on the cluster (labels, annotations, finalizers, Secret names);
- :mod:`.cluster`: the few API calls, behind the :class:`~.cluster.Cluster` protocol;
- :mod:`.secrets`: rendering the credentials and record Secrets, and writing them only when they differ;
- :mod:`.crds`: the CustomResourceDefinitions, generated from the core's spec models.

It imports the core (``clientreg``) and the ``kubernetes`` client (an optional dependency: the ``operator``
and ``pulumi`` extras), never a front end; the core never imports it. Importing this package imports no
submodule: each one pulls in only what it needs (``conventions`` and ``crds`` need no ``kubernetes``).
"""
