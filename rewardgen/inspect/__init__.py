"""Looking at results: the HTML report (``report``, drawn from templates shared with the web UI via
``pages`` and ``charts``), ``debug`` (why a reward does not work), ``export`` and TensorBoard scalars."""
