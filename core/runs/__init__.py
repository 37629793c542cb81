"""Background jobs: a worker subprocess per job, with status, progress and cancel in a job folder."""
