"""Tasks: their specs (``spec``), the trusted fitness library (``fitness``), whether a fitness applies
to a brought robot (``applicability``), the sparse success baseline (``baselines``) and the generic
env for robots brought as MJCF files (``mjcf_env``)."""
