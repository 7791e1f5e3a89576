"""The evaluator service: GIQA-Bench evaluations over REST (``app``), scored on the ``eval`` queue
(``runner``, ``tasks``)."""
