"""Running the evolve loop: the loop and its config (``evolve``), the schedule (``schedule``), one
train-then-evaluate step shared with the final evaluation (``step``, ``final``), where jobs run
(``executors``) and a person's feedback (``feedback``, ``interactive``)."""
