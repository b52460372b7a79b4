"""Running the evolve loop: its settings (``config``), the loop (``evolve``), one candidate's step shared
by evolve, the confirmation and the final evaluation (``step``), the schedules and their runner
(``schedule``, ``runner``, ``slices``), videos (``videos``), where jobs run (``executors``), what a
watcher is told (``events``, ``progress``, ``pace``) and a person's feedback (``feedback``, ``interactive``)."""
