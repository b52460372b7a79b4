"""Running the evolve loop: its settings (``config``), the loop (``evolve``), the schedule
(``schedule``), one train-then-evaluate step shared with the final evaluation (``step``, ``final``),
where jobs run (``executors``), what a watcher is told (``progress``) and a person's feedback
(``feedback``, ``interactive``)."""
