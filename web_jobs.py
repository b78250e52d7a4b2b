"""The web page's job queue: long commands (a training, an evaluation) run one at a time in
the background, their state on disk, so that they outlive the browser tab and the server.

A job is a folder under jobs_dir() holding `job.json` (its command, state and times, always
written whole by atomic_path) and `log.txt` (the command's stdout and stderr). The page only
reads those files: a closed tab loses nothing, a restarted server finds every job again.

One job runs at a time (two CPU-bound trainings on one machine would each take twice as
long). `start_next` starts the oldest queued job when none runs; it is called when a job is
submitted, when one ends (by the job's own runner, so the queue goes on with no server), and
by the page as it polls. A job runs under a small runner (`python web_jobs.py run JOB`) in a
session of its own: Ctrl-C in the server's terminal does not reach it. Whether a job runs is
not guessed from a process id (ids are reused): the runner holds a lock on the job's
`.running.lock`, taken by the starter before the runner exists and handed to it, which the
operating system ends with the runner however it ends (even SIGKILL).

Stopping a job sends SIGINT to its process group, as Ctrl-C in a terminal would: the
trainers save their state and exit 130, and a new job with --resume continues (see
training.fit). POSIX only (fcntl), as the project is tested on Linux.

    job = submit("train", [sys.executable, "GenLayered.py", "me.mp4", "--epochs", "8"], "train me")
    read(job)["state"]    # queued, running, done, failed, stopped or cancelled
"""
import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from files import atomic_path
from project import PROJECT_DIR, DanceError
from web_inputs import web_dir

ENDED = ("done", "failed", "stopped", "cancelled")
STOPPED_CODES = {128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGHUP}  # the trainers' "saved, stopped"
JOB_ID = re.compile(r"\d{8}-\d{6}(-\d+)?")  # when it was submitted: the ids sort by time
LOG_TAIL_BYTES = 64 * 1024  # what the page reads of a log: its end
LOG_LINES = 40              # what it shows of that
BAR_PREFIX = re.compile(r"^([^|\n]{0,80}?):\s+\d+%\|")  # a tqdm line up to its bar: "epoch 2/8:  45%|"

_spawned = []  # this process's runners, reaped as they end (no zombies in a long-running server)


def jobs_dir():
    return web_dir() / "jobs"


def _job_dir(job_id):
    if not JOB_ID.fullmatch(str(job_id)):  # an id from the page never names another folder
        raise DanceError(f"{job_id}: not a job of this page")
    folder = jobs_dir() / str(job_id)
    if not (folder / "job.json").is_file():
        raise DanceError(f"job {job_id}: no such job (its folder {folder} is gone)")
    return folder


def _write(folder, job):
    with atomic_path(folder / "job.json") as tmp:
        tmp.write_text(json.dumps(job, indent=1))


def _held(folder):
    """Whether a runner holds the job's lock: the job runs."""
    lock = folder / ".running.lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we took just to look
    return False


@contextlib.contextmanager
def _queue_lock():
    """One starter at a time (the server's threads, a runner that ended)."""
    jobs_dir().mkdir(parents=True, exist_ok=True)
    fd = os.open(jobs_dir() / ".queue.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def submit(kind, command, title, **extra):
    """Queue `command` (a list: the program and its arguments, run in the project folder) as
    a job of `kind` ("train", "evaluate"), shown as `title`; `extra`: what the page wants to
    read back (the target, the model file). Returns the job's id; it starts when none runs."""
    with _queue_lock():
        job_id = time.strftime("%Y%m%d-%H%M%S")
        n = 1
        while (jobs_dir() / job_id).exists():
            n += 1
            job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{n}"
        folder = jobs_dir() / job_id
        folder.mkdir(parents=True)
        _write(folder, {"id": job_id, "kind": kind, "title": title, "command": [str(c) for c in command],
                        "state": "queued", "created": time.time(), "started": None, "ended": None,
                        "returncode": None, "error": None, "pid": None, **extra})
    start_next()
    return job_id


def read(job_id):
    """The job's record, its state as it is now: a "running" job whose runner is gone without
    saying how it ended (killed with it) is "failed"."""
    folder = _job_dir(job_id)
    job = json.loads((folder / "job.json").read_text())
    if job["state"] == "running" and not _held(folder):
        job = json.loads((folder / "job.json").read_text())  # it may have just written its end
        if job["state"] == "running":
            job.update(state="failed", error=job.get("error") or "the job's process ended without a word "
                                                                 "(killed?); see its log")
    return job


def all_jobs():
    """Every job's record, the newest first."""
    if not jobs_dir().is_dir():
        return []
    ids = sorted((p.name for p in jobs_dir().iterdir() if (p / "job.json").is_file()), reverse=True)
    return [read(i) for i in ids]


def running():
    """The job that runs now, or None."""
    return next((job for job in all_jobs() if job["state"] == "running"), None)


def start_next():
    """Start the oldest queued job when none runs; its id, or None."""
    for proc in list(_spawned):
        if proc.poll() is not None:
            _spawned.remove(proc)
    with _queue_lock():
        jobs = all_jobs()
        if any(job["state"] == "running" for job in jobs):
            return None
        queued = [job for job in jobs if job["state"] == "queued"]
        if not queued:
            return None
        job = queued[-1]  # the oldest
        folder = jobs_dir() / job["id"]
        fd = os.open(folder / ".running.lock", os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken here, kept by the runner
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "run", str(folder), str(fd)],
                                    pass_fds=(fd,), start_new_session=True, cwd=PROJECT_DIR,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            os.close(fd)
        _spawned.append(proc)
        job.update(state="running", started=time.time(), pid=proc.pid)  # its own process group: pgid == pid
        _write(folder, job)
        return job["id"]


def stop(job_id):
    """Stop a job as Ctrl-C would (a trainer saves its state and can be resumed), or take a
    queued one off the queue. Returns what was done, in words."""
    job = read(job_id)
    folder = _job_dir(job_id)
    if job["state"] == "queued":
        with _queue_lock():
            job = read(job_id)
            if job["state"] == "queued":
                job.update(state="cancelled", ended=time.time())
                _write(folder, job)
                return f"job {job_id} taken off the queue"
    if job["state"] != "running":
        return f"job {job_id} is {job['state']}: nothing to stop"
    (folder / "stop-requested").touch()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job["pid"], signal.SIGINT)
    return f"job {job_id}: asked to stop (a trainer saves its state first; resume it later)"


def log_tail(job_id, limit=LOG_TAIL_BYTES):
    """The end of the job's log, its progress bars' carriage returns made into line ends."""
    return _tail(_job_dir(job_id) / "log.txt", limit)


def _tail(path, limit=LOG_TAIL_BYTES):
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - limit))
        text = f.read().decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def readable(text, lines=LOG_LINES):
    """The last `lines` lines of a log as a person reads it: of a progress bar's many updates,
    only the newest of each run is kept."""
    kept = []
    for line in text.splitlines():
        bar, before = BAR_PREFIX.match(line), BAR_PREFIX.match(kept[-1]) if kept else None
        if bar and before and bar.group(1) == before.group(1):  # the same bar, further on
            kept[-1] = line
        elif line.strip():
            kept.append(line)
    return "\n".join(kept[-lines:])


def last_error(text):
    """The last one-line error a command printed (cli_main's 'error: ...'), or None."""
    lines = [line for line in text.splitlines() if line.startswith("error: ")]
    return lines[-1][len("error: "):] if lines else None


def run(folder, lock_fd):
    """The runner (in its own session, holding the job's lock on `lock_fd`): run the job's
    command with its output to log.txt, then record how it ended and start the next job."""
    folder = Path(folder)
    # SIGINT is for the command (its process group gets it); the runner itself lives on to record the end.
    signal.signal(signal.SIGINT, lambda *_: None)
    job = json.loads((folder / "job.json").read_text())
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(folder / "log.txt", "ab") as log:
        log.write(f"$ {' '.join(job['command'])}\n".encode())
        log.flush()
        try:
            code = subprocess.call(job["command"], cwd=PROJECT_DIR, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env)
        except OSError as e:
            log.write(f"error: cannot start {job['command'][0]}: {e}\n".encode())
            code = 127
    stopped = (folder / "stop-requested").exists() and code in STOPPED_CODES
    with _queue_lock():  # read again: the starter wrote the start after this runner had begun
        job = json.loads((folder / "job.json").read_text())
        job.update(state="done" if code == 0 else "stopped" if stopped else "failed", ended=time.time(),
                   returncode=code, error=None if code == 0 or stopped else last_error(_tail(folder / "log.txt"))
                   or f"exit status {code}; see the log")
        _write(folder, job)
    os.close(lock_fd)  # the job no longer runs
    start_next()


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "run":
    run(sys.argv[2], int(sys.argv[3]))
