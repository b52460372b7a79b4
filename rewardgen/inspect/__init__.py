"""Looking at results: the HTML report (``report``, drawn from templates shared with the web UI via
``pages`` and ``charts``), ``debug`` (why a reward does not work), ``export`` (the reward), the policy
taken home (``policy_export``, ``policy_loader``, ``policy_onnx``), ``play`` and TensorBoard scalars."""
