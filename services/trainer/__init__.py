"""The trainer service: training jobs over REST (``app``), run by a launcher (``launchers``): a ``train``
worker's child process (``runner``, ``tasks``) or a Kubernetes Job (``kubernetes``, ``pod``)."""
