"""What crosses a boundary, and its rules: the State a reward sees (``schema``, ``state``), what a
reward must return (``reward``), the policy file (``policy``), the worker job (``job``) and parsing
Python source from any thread (``syntax``)."""
