"""Benchmarks (``rewardgen bench ...``): training speed and learning (``train``), evolve against its
trainer (``evolve``), schedules (``schedule``), the task suite (``suite``), the sandbox's cost
(``sandbox``) and MuJoCo Warp (``warp``). Results are recorded in docs/benchmarks.md."""
