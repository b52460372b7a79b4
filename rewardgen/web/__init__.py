"""rewardgen's web UI (FastAPI + Jinja2): ``create_app(runs_dir, token=None, start_next=None)`` and ``serve``."""

from rewardgen.web.app import check_bind, create_app, serve
from rewardgen.web.jobs import JobError, Jobs

__all__ = ["JobError", "Jobs", "check_bind", "create_app", "serve"]
