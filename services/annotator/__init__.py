"""The annotator service: annotation runs over REST (``app``), their stages as Celery tasks (``tasks``)."""
