"""The web page: drive a target, train your own, see how good it is; local and offline.

    python app.py                  # http://127.0.0.1:7860 (or: make web)
    python app.py --host 0.0.0.0   # reachable from other machines: anyone who can reach it may use it

A Gradio app over the project's own entry points, so the page and the command line cannot
disagree: the drive tab runs DanceDemo, the train tab runs a trainer's command line
(`python GenLayered.py VIDEO --epochs 8`) and the evaluate tab `python evaluate.py`, both as
background jobs (web_jobs.py: one at a time, their state and logs on disk, so they outlive
the tab and the server). Every error is the command line's one-line DanceError, shown in the
page's status box. Files are named by the page only by bare names from lists (web_inputs.py):
no path outside the project's folders is reachable, uploads are checked, size-limited and kept
in their own folder. Nothing is fetched from the internet: Gradio's analytics are off (set
before it is imported), no share link, and the theme uses the system's fonts.
"""
import argparse
import logging
import os
import sys
import time
from pathlib import Path

from web_inputs import MAX_UPLOAD_BYTES, VIDEO_SUFFIXES, store_upload, uploads_dir, video_path, videos, web_dir

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported: no telemetry, no version check
os.environ["HF_HUB_OFFLINE"] = "1"                 # nor the model hub
os.environ.setdefault("GRADIO_TEMP_DIR", str(web_dir() / "gradio"))  # Gradio's copies of uploads and results

import gradio as gr  # noqa: E402

from checkpoints import MODELS_DIR, model_path  # noqa: E402
from DanceDemo import DEFAULT_TARGET, NORMALISE_CHOICES, DanceDemo  # noqa: E402
from files import check_output  # noqa: E402
from generators import DEFAULT, find  # noqa: E402
from project import PROJECT_DIR, DanceError, cli_main  # noqa: E402
from smoothing import SMOOTHERS  # noqa: E402
from sources import DEFAULT_SMOOTHER, LIVE_SMOOTHER  # noqa: E402
import web_jobs  # noqa: E402
from web_live import STREAM_EVERY_S, STREAM_LIMIT_S, stream_step  # noqa: E402
from web_lists import describe, evaluation_targets, generator_choices, pick, target_path, targets  # noqa: E402
from web_views import evaluation_files, evaluation_view, job_label, job_view, split_view  # noqa: E402

DEFAULT_PORT = 7860
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TRAIN_EPOCHS = 8           # the README's "make your own target" command: python GenLayered.py me.mp4 --epochs 8
EVAL_FRAMES = 200          # the page's evaluation scores this many test frames by default (0: all; minutes vs hours)
POLL_SECONDS = 2.0         # how often the page reads the jobs back from disk
GRADIO_CACHE = (600, 3600)  # every 10 minutes, Gradio's copies older than an hour go (live pictures: ~7 MB a minute)
# Lists whose choices change while the page is open (uploads, trained targets, jobs): Gradio would
# refuse a value it did not list at start-up, or one an event just replaced, with a traceback; every
# name is checked by our own code (web_inputs.video_path, web_lists.target_path), in one line.
LISTED = {"allow_custom_value": True}
DATA_SOURCE, UPLOAD_SOURCE, LIVE_SOURCE = "a video of the data folder", "an uploaded or recorded video", \
    "the webcam, live"
SHIPPED_GRIDS = tuple((PROJECT_DIR / "images" / f"evaluation_grid{part}.png", caption) for part, caption in
                      (("", "held-out frames"), ("_unseen", "unseen poses"), ("_hardest", "the hardest poses")))

log = logging.getLogger("dance")


def chosen_source(kind, data_video, recorded):
    if kind == DATA_SOURCE:
        return video_path(data_video)
    if not recorded:
        raise DanceError("upload a video or record one with the webcam first")
    return store_upload(recorded, Path(recorded).name)


def drive(kind, data_video, recorded, gen, target, smooth, normalise, every, progress=gr.Progress(track_tqdm=True)):
    """Run the demo as `python DanceDemo.py --source ... --output ...` does: (video, status)."""
    try:
        source, row = chosen_source(kind, data_video, recorded), find(gen)
        person = target_path(row.name, target)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = web_dir() / "results" / f"{source.stem}_to_{target}_{row.name}-{stamp}.mp4"
        check_output(out, (".mp4",), "video", inputs=(source, person))
        t0 = time.perf_counter()
        stats = DanceDemo(source, row, target=person, smooth=smooth, normalise=normalise,
                          every=int(every or 1)).draw(output=out)
        return str(out), (f"wrote {out.name}: {stats['frames']} frames, {stats['missing']} with no person found "
                          f"(marked), in {time.perf_counter() - t0:.1f} s")
    except DanceError as e:
        return None, f"error: {e}"


def live_demo(source, settings):
    """The demo of a webcam stream (web_live): the command line's, over the pushed frames; the
    target's name is resolved here, once a session (a bad one: the session's one-line error)."""
    gen, target, smooth, normalise = settings
    return DanceDemo(source, gen, target=target_path(gen, target), smooth=smooth, normalise=normalise)


def live(frame, session, last_status, gen, target, smooth, normalise):
    """One webcam frame of a live stream: (newest picture, session, status, status time); what
    has not changed is skipped (web_live.stream_step runs the demo on a thread of its own)."""
    settings = (gen, target, smooth, normalise)   # compared every frame; resolved once a session (live_demo)
    picture, session, status, last_status = stream_step(frame, session, settings, last_status, live_demo)
    return (gr.skip() if picture is None else picture), session, (gr.skip() if status is None else status), \
        last_status


def refresh_drive(data_video, gen, target):
    """The drive tab's lists read again: a new upload, a target trained since, are there."""
    names, people = sorted(videos()), targets(gen)
    return (gr.update(choices=names, value=pick(data_video, names)),
            gr.update(choices=people, value=pick(target, people)))


def source_shown(kind):
    """What the drive tab shows for a kind of source: (data video list, upload, webcam, live
    picture, result video, Run button, every k-th frame, smoothing); a live stream starts with
    the webcam's own button, takes every frame it has time for, and is smoothed as the command
    line smooths a live source (no look-ahead, which would add latency)."""
    is_live = kind == LIVE_SOURCE
    shown = [gr.update(visible=v) for v in
             (kind == DATA_SOURCE, kind == UPLOAD_SOURCE, is_live, is_live, not is_live, not is_live, not is_live)]
    return shown + [gr.update(value=LIVE_SMOOTHER if is_live else DEFAULT_SMOOTHER)]


def drive_tab():
    with gr.Tab("Drive a target", id="drive") as tab:
        with gr.Row():
            with gr.Column():
                kind = gr.Radio([DATA_SOURCE, UPLOAD_SOURCE, LIVE_SOURCE], value=DATA_SOURCE,
                                label="source (the motion)")
                names = sorted(videos())
                data_video = gr.Dropdown(names, value="karate1.mp4" if "karate1.mp4" in names else None,
                                         label="video (the data folder's, then your uploads)", elem_id="data-video",
                                         **LISTED)
                recorded = gr.Video(sources=["upload", "webcam"], label="upload a video, or record one",
                                    visible=False, include_audio=True, elem_id="recorded")
                webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy", visible=False,
                                  label="webcam: Record streams, Stop ends (one stream at a time: another tab's "
                                        "waits for it)", elem_id="webcam")
                gen = gr.Dropdown(generator_choices(), value=DEFAULT, label="generator", info=describe(DEFAULT),
                                  elem_id="generator")
                target = gr.Dropdown(targets(DEFAULT), value=targets(DEFAULT)[0] if targets(DEFAULT) else None,
                                     label="target (the person)", elem_id="target", **LISTED)
                with gr.Row():
                    smooth = gr.Dropdown(list(SMOOTHERS), value=DEFAULT_SMOOTHER, label="smoothing")
                    normalise = gr.Radio(list(NORMALISE_CHOICES), value="auto", label="normalisation")
                    every = gr.Number(1, precision=0, minimum=1, label="every k-th frame")
                run = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column():
                result = gr.Video(label="source | target", interactive=False, buttons=["download"],
                                  elem_id="result")
                live_result = gr.Image(label="source | target, live", interactive=False, visible=False,
                                       format="jpeg", elem_id="live-result")
                status = gr.Textbox(label="status", interactive=False, elem_id="drive-status")
        session, last_status = gr.State(None), gr.State(0.0)
        kind.change(source_shown, kind, [data_video, recorded, webcam, live_result, result, run, every, smooth])
        # The lists are set by three events (a generator chosen, the tab opened, the page loaded): one
        # queue for them, so they apply in the order they came, not in the order they happen to end
        # (a page-load refresh that ended after the user's choice put back the old generator's targets).
        lists = {"concurrency_id": "drive-lists", "concurrency_limit": 1}
        gen.change(lambda g: (gr.update(info=describe(g)),
                              gr.update(choices=targets(g), value=(targets(g) or [None])[0])), gen, [gen, target],
                   **lists)
        run.click(drive, [kind, data_video, recorded, gen, target, smooth, normalise, every], [result, status])
        webcam.stream(live, [webcam, session, last_status, gen, target, smooth, normalise],
                      [live_result, session, status, last_status], stream_every=STREAM_EVERY_S,
                      time_limit=STREAM_LIMIT_S, concurrency_limit=1, show_progress="hidden")
        tab.select(refresh_drive, [data_video, gen, target], [data_video, target], **lists)
        return refresh_drive, [data_video, gen, target], [data_video, target], lists


def take_upload(file):
    """An upload for the train tab, checked and kept: (video list update, status)."""
    if not file:
        return gr.update(), ""
    try:
        kept = store_upload(file, Path(file).name)
    except DanceError as e:
        return gr.update(), f"error: {e}"
    return gr.update(choices=sorted(videos()), value=kept.name), f"kept {kept.name} in {uploads_dir()}"


def show_split(name, progress=gr.Progress(track_tqdm=True)):
    """The chosen video's skeletons and held-out split: (training sheet, held-out sheet, text, status)."""
    if not name:
        return None, None, "", ""
    try:
        train, held, text = split_view(video_path(name))
    except DanceError as e:
        return None, None, "", f"error: {e}"
    return train, held, text, ""


def trainer_command(name, gen, epochs, replace, resume=False):
    """The trainer's command line, as the README writes it: python GenLayered.py VIDEO --epochs N."""
    video, row = video_path(name), find(gen)
    if not row.learned:
        raise DanceError(f"{row.name} is not trained: it searches the target's video (pick it in the drive tab)")
    if not epochs or int(epochs) < 1:
        raise DanceError(f"epochs {epochs}: train for at least 1 epoch")
    options = [x for k, v in row.config.items() for x in (f"--{k}", str(v))]
    return video, row, [sys.executable, f"{row.cls.__module__}.py", str(video), "--epochs", str(int(epochs)),
                        *options, *(["--replace"] if replace else []), *(["--resume"] if resume else [])]


def start_training(name, gen, epochs, replace, resume=False):
    try:
        video, row, command = trainer_command(name, gen, epochs, replace, resume)
        job = web_jobs.submit("train", command, f"{'resume' if resume else 'train'} {row.name} on {video.name}",
                              target=video.stem, model=str(model_path(video, row.name)))
    except DanceError as e:
        return gr.update(), f"error: {e}"
    return gr.update(choices=job_choices(), value=job), f"job {job} queued"


def job_choices():
    return [(job_label(job), job["id"]) for job in web_jobs.all_jobs()]


def show_job(job_id):
    """(Markdown, sample grid, log) of a job, read back from disk; also starts the next queued job."""
    web_jobs.start_next()
    if not job_id:
        return "No job chosen.", None, ""
    try:
        job = web_jobs.read(job_id)
        log_text = web_jobs.log_tail(job_id)
    except DanceError as e:
        return f"error: {e}", None, ""
    text, grid = job_view(job, log_text)
    return text, grid, web_jobs.readable(log_text)


def stop_job(job_id):
    try:
        return web_jobs.stop(job_id) if job_id else "choose a job first"
    except DanceError as e:
        return f"error: {e}"


def resume_job(job_id):
    """A stopped training goes on from its checkpoint: the same command with --resume."""
    try:
        job = web_jobs.read(job_id)
    except DanceError as e:
        return gr.update(), f"error: {e}"
    if job["kind"] != "train" or job["state"] not in ("stopped", "failed"):
        return gr.update(), f"job {job_id} is {job['state']}: only a stopped training can be resumed"
    later = [j["id"] for j in web_jobs.all_jobs() if j.get("resumes") == job_id]
    if later:  # resumed once already: a second resume would train its finished model again
        return gr.update(), f"job {job_id} was resumed already, as job {later[0]}: resume that one if it stopped"
    command = job["command"] + ([] if "--resume" in job["command"] else ["--resume"])
    new = web_jobs.submit("train", command, job["title"].replace("train ", "resume ", 1),
                          target=job.get("target"), model=job.get("model"), resumes=job_id)
    return gr.update(choices=job_choices(), value=new), f"job {new} queued (resumes job {job_id})"


def refresh_train(name, job):
    """The train tab's lists read again; with no job chosen, the one running (else the newest)."""
    names, jobs = sorted(videos()), job_choices()
    if not job:
        now = web_jobs.running()
        job = now["id"] if now else None
    return (gr.update(choices=names, value=name if name in names else None),
            gr.update(choices=jobs, value=pick(job, jobs)))


def train_tab():
    with gr.Tab("Make your own target", id="train") as tab:
        with gr.Row():
            with gr.Column():
                # Any file is taken and checked by store_upload, so a wrong one gets its one-line reason
                # (Gradio's own file_types check shows a bare "Error").
                upload = gr.File(label=f"upload a video of one person (at most {MAX_UPLOAD_BYTES // 2**20} MB; "
                                       f"{' '.join(VIDEO_SUFFIXES)})", elem_id="train-upload")
                name = gr.Dropdown(sorted(videos()), value=None, label="target video", elem_id="train-video", **LISTED)
                split = gr.Markdown()
                train_sheet = gr.Image(label="training frames, with their skeletons", interactive=False)
                held_sheet = gr.Image(label="held-out frames (never trained on)", interactive=False)
            with gr.Column():
                gen = gr.Dropdown(generator_choices(learned_only=True), value=DEFAULT, label="generator to train",
                                  elem_id="train-gen",
                                  info="the README's own-target recipe trains the layered generator (type 7)")
                epochs = gr.Number(TRAIN_EPOCHS, precision=0, minimum=1, label="epochs", elem_id="train-epochs")
                replace = gr.Checkbox(False, label="write over an earlier model of this video (--replace)")
                start = gr.Button("Start training", variant="primary", elem_id="start-training")
                status = gr.Textbox(label="status", interactive=False, elem_id="train-status")
                job = gr.Dropdown(job_choices(), value=(job_choices() or [(None, None)])[0][1], label="jobs",
                                  elem_id="jobs", **LISTED)
                with gr.Row():
                    stop, resume = gr.Button("Stop"), gr.Button("Resume")
                view = gr.Markdown()
                sample = gr.Image(label="held-out samples, newest epoch: skeleton, real, generated",
                                  interactive=False, height=420)
                log_box = gr.Textbox(label="log", lines=8, max_lines=8, autoscroll=True, interactive=False)
        upload.upload(take_upload, upload, [name, status])
        name.change(show_split, name, [train_sheet, held_sheet, split, status])
        start.click(start_training, [name, gen, epochs, replace], [job, status])
        stop.click(stop_job, job, status)
        resume.click(resume_job, job, [job, status])
        job.change(show_job, job, [view, sample, log_box])
        timer = gr.Timer(POLL_SECONDS)
        timer.tick(show_job, job, [view, sample, log_box])
        timer.tick(lambda j: gr.update(choices=job_choices(), value=j), job, job)
        tab.select(refresh_train, [name, job], [name, job])
        return refresh_train, [name, job], [name, job], {}


def show_evaluation(target):
    try:
        shipped = SHIPPED_GRIDS if target == Path(DEFAULT_TARGET).stem else ()
        return evaluation_view(target, shipped)
    except DanceError as e:
        return f"error: {e}", []


def start_evaluation(target, max_frames, hard):
    """Queue `python evaluate.py TARGET --json ... --grid ...` as a job: its figures then show here."""
    try:
        video = target_path("nearest", target)
        figures, grid = evaluation_files(target)
        command = [sys.executable, "evaluate.py", str(video), "--json", str(figures), "--grid", str(grid),
                   "--max-frames", str(int(max_frames or 0)), "--models-dir", str(MODELS_DIR),
                   *([] if hard else ["--no-hard"])]
        job = web_jobs.submit("evaluate", command, f"evaluate {target}", target=target)
    except DanceError as e:
        return f"error: {e}"
    return f"job {job} queued: follow it in the 'Make your own target' tab; the figures show here when it ends"


def refresh_evaluate(target):
    names = evaluation_targets()
    return gr.update(choices=names, value=pick(target, names))


def evaluate_tab(page):
    with gr.Tab("See how good it is", id="evaluate") as tab:
        names = evaluation_targets()
        target = gr.Dropdown(names, value=names[0] if names else None, label="target", elem_id="eval-target",
                             **LISTED)
        with gr.Row():
            frames = gr.Number(EVAL_FRAMES, precision=0, minimum=0, label="test frames to score (0: all)")
            hard = gr.Checkbox(False, label="also the harder clips (turned, mirrored, smaller: slow)")
            run = gr.Button("Run the evaluation", variant="primary")
        status = gr.Textbox(label="status", interactive=False)
        summary = gr.Markdown()
        grids = gr.Gallery(label="grids: skeleton, real frame, each generator", columns=3, height=420,
                           object_fit="contain")
        target.change(show_evaluation, target, [summary, grids])
        run.click(start_evaluation, [target, frames, hard], status)
        tab.select(refresh_evaluate, target, target)
        page.load(show_evaluation, target, [summary, grids])
        return refresh_evaluate, [target], [target], {}


def build():
    """The page: three tabs."""
    with gr.Blocks(title="Dance transfer", analytics_enabled=False, delete_cache=GRADIO_CACHE) as page:
        gr.Markdown("# Dance transfer\nA person's motion onto a target person (Everybody Dance Now, MediaPipe "
                    "Pose). Everything runs on this machine.")
        with gr.Tabs():
            refreshers = [drive_tab(), train_tab(), evaluate_tab(page)]
        for refresh, inputs, outputs, queue in refreshers:  # what changed since the server started: new
            page.load(refresh, inputs, outputs, **queue)      # uploads, targets, jobs
    return page


def theme():
    """Gradio's default look with the system's fonts: no font file fetched from anywhere."""
    return gr.themes.Default(font=[gr.themes.Font("system-ui"), "sans-serif"],
                             font_mono=[gr.themes.Font("ui-monospace"), "monospace"])


def main():
    parser = argparse.ArgumentParser(description="The web page: drive a target, train your own, see how good it is.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests, to itself
    if not 1 <= args.port <= 65535:
        raise DanceError(f"--port {args.port}: must lie between 1 and 65535")
    if args.host not in LOOPBACK:
        log.warning("listening on %s: anyone who can reach this machine can use the page, upload videos and start "
                    "trainings (there is no login)", args.host)
    web_jobs.start_next()  # a job queued while no server ran
    page = build()
    page.queue(default_concurrency_limit=1)  # one demo at a time: two would halve each one's speed
    page.launch(server_name=args.host, server_port=args.port, share=False, theme=theme(), ssr_mode=False,
                max_file_size=MAX_UPLOAD_BYTES, footer_links=[], allowed_paths=[], quiet=False)
    return 0


if __name__ == "__main__":
    cli_main(main)
