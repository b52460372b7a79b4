"""What crosses a boundary, and its rules: the State a reward sees (``schema``, ``state``), what a
reward must return (``reward``), the policy file (``policy``) and the worker job (``job``)."""
