"""``rewardgen`` command line: a thin shell over the library.

Every command's bad input ends with one line on stderr and exit code 2 (any ``UserError``, mapped in
``main``); nothing on disk is harmed. A run with nothing usable ends with one line and exit code 1.
With ``--json`` the last line of stdout is one JSON object and the progress display goes to stderr.
"""

from __future__ import annotations

import sys

from rewardgen import interrupt
from rewardgen.cli.commands import cmd_evolve, cmd_resume, cmd_serve, cmd_train
from rewardgen.cli.common import CURRENT_RUN, EXIT_USAGE, resume_command
from rewardgen.cli.parser import build_parser
from rewardgen.errors import UserError
from rewardgen.safetext import one_line, term


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", module="gymnasium")
    interrupt.install()  # a Ctrl-C swallowed by a finalizer still stops the run (rewardgen/interrupt.py)
    parser = build_parser()
    reap = False
    try:
        args = parser.parse_args(argv)
        if argv is None and args.func is not cmd_serve:
            # every process this command starts, at any depth, becomes ours to wait for when it is
            # orphaned: the command returns only once they are all gone (rewardgen/procs/reaper.py).
            # (Not serve: the runs it starts in the background are commands of their own.)
            from rewardgen.procs.reaper import become_subreaper

            reap = become_subreaper()
        if args.func in (cmd_evolve, cmd_train, cmd_resume):
            if isinstance(getattr(args, "task", None), str):  # a task that is not there: one line, before any fork
                from rewardgen.tasks.spec import get_task

                get_task(args.task)
            from rewardgen.procs import zygote

            zygote.prestart()  # its imports overlap this command's own (docs/speed.md)
        return args.func(args)
    except UserError as exc:  # every user error, from any module: one line, exit 2
        print(f"{getattr(exc, 'prog', 'rewardgen')}: error: {one_line(exc, 1000, markup=False)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        run_dir = CURRENT_RUN.get("run_dir")
        print("rewardgen: interrupted" + (f"; continue with `{term(resume_command(run_dir), markup=False)}`"
                                          if run_dir else ""), file=sys.stderr)
        return 130
    finally:
        if reap:
            from rewardgen.procs.reaper import reap_descendants

            reap_descendants()


if __name__ == "__main__":
    sys.exit(main())
