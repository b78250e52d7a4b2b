"""Writing videos: an mp4 that plays everywhere, with the sound of its source in step.

`VideoWriter` pipes frames to ffmpeg (the binary inside the imageio-ffmpeg wheel, `ffmpeg`),
under a temporary name renamed into place when complete (see files.atomic_path), and adds the
sound of a source video, moved by where its video stream starts (`stream_starts`). `check_fps`
refuses a frame rate that would make a slide show.
"""
import contextlib
import errno
import logging
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

from files import OutputClaim, check_output, opencv_path, remove_stale_temporaries, temporary_name, write_error
from project import DanceError

log = logging.getLogger("dance")

MIN_OUTPUT_FPS = 1.0   # a video written at fewer frames per second is a slide show: refused


def check_fps(fps, every, name):
    """The frame rate of a video made of every `every`-th frame of `name` (at `fps`);
    a DanceError when it would be a slide show."""
    out = fps / every
    if not math.isfinite(out) or out < MIN_OUTPUT_FPS:
        most = max(1, int(fps // MIN_OUTPUT_FPS))
        raise DanceError(f"--every {every}: {name} at {fps:g} frames/s would give {out:.3g} frames/s; "
                         f"use --every {most} or less")
    return out



def ffmpeg():
    """The ffmpeg binary inside the imageio-ffmpeg wheel (libx264 and AAC built in): nothing is
    downloaded, nothing needs installing by hand."""
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


STREAM_LINE = re.compile(r"^\s*Stream #\d+:\d+.*?: (Video|Audio): (.*)$", re.M)
STREAM_START = re.compile(r", start (-?\d+(?:\.\d+)?)")


def stream_starts(path):
    """(video, audio): the time, in seconds on the file's clock, at which the first video stream
    and the first audio stream start (0 where ffmpeg states none; audio None without any):
    a video stream may begin after its sound (MPEG-TS, a camera that starts recording sound
    first, a file cut or muxed with an offset), and only these say by how much."""
    said = subprocess.run([ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                          text=True, errors="replace").stderr
    starts = {}
    for kind, rest in STREAM_LINE.findall(said):
        if kind not in starts and "(attached pic)" not in rest:  # cover art is no video stream
            match = STREAM_START.search(rest)
            starts[kind] = float(match.group(1)) if match else 0.0
    return starts.get("Video", 0.0), starts.get("Audio")


class VideoWriter:
    """An mp4 that plays everywhere (H.264, yuv420p, the index at the front for browsers),
    with the audio of `audio` (a video file) when it has any, written under a temporary name
    and renamed into place by `close()`: an error or Ctrl-C never leaves a half-written video
    behind (`discard()` removes the temporary file instead).

        with VideoWriter("output/demo.mp4", fps=25, inputs=[source], audio=source) as out:
            out.write(frame)            # every frame the same size, BGR uint8
            out.write(frame, time=t)    # or: shown from t seconds on (a source frame's time)

    Frames are piped raw to the ffmpeg binary that ships inside the imageio-ffmpeg wheel, at
    a constant `fps`. Written with its time, a frame is shown from that time until the next
    frame's (output frames of 1 / fps each: repeated where the frames are further apart, left
    out where they are closer, so each is on screen within half an output frame of its time),
    as a variable-rate phone video or a live session needs; without, each frame is one output
    frame. The audio starts with the first frame, at the sound the source plays with it
    (the times are on `audio`'s clock when it is the frames' source: a video stream that
    starts after its sound, or before, stays in step), and is cut (or padded with silence) to
    the video's length, so a video of every k-th source frame at fps / k keeps the sound in step.
    """

    def __init__(self, filename, fps, inputs=(), audio=None, cache=False):
        self.filename = check_output(filename, (".mp4",), "video", inputs, cache=cache)
        if not (math.isfinite(fps) and fps >= MIN_OUTPUT_FPS):
            raise DanceError(f"{self.filename}: cannot write a video at {fps:.3g} frames per second "
                             f"(at least {MIN_OUTPUT_FPS:g})")
        self._claim = OutputClaim(self.filename, "video").acquire()  # released by close() or discard()
        picture = self.filename.with_name(f"{self.filename.stem}-picture.mp4")  # before the sound is added
        for path in (self.filename, picture):
            remove_stale_temporaries(path)
        self._tmp, self._silent = temporary_name(self.filename), temporary_name(picture)
        self.fps, self.audio = fps, audio if audio is None else Path(audio)
        self.frames = 0
        self._ffmpeg = self._log = None
        self._first_time, self._held = None, None  # timed writes: the time of the first, the frame on screen

    def _start(self, width, height):
        # The picture first (its length is known only at the end); the sound is added in close().
        target = self._silent if self.audio else self._tmp
        command = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-framerate", f"{self.fps:.6g}",
                   "-i", "pipe:0", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",  # yuv420p needs even sides
                   "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
                   "-movflags", "+faststart", str(target)]
        self._log = tempfile.TemporaryFile()
        # A session of its own: Ctrl-C in the terminal is for us to handle (a live recording is
        # finished and kept, anything else discarded), not a signal that stops ffmpeg mid-file.
        self._ffmpeg = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
                                        start_new_session=True)
        self.size = (width, height)

    def _sound_filter(self):
        """The audio filter that starts the sound where the first frame is: `audio`'s sound from
        its first sample is moved by where the first frame lies on its clock (trimmed when the
        sound started earlier, delayed by silence when later), then padded at the end."""
        video_start, audio_start = stream_starts(self.audio)
        offset = video_start + (self._first_time or 0.0) - (audio_start or 0.0)  # seconds into the sound
        steps = ["asetpts=PTS-STARTPTS"]
        if offset > 0:
            steps += [f"atrim=start={offset:.6f}", "asetpts=PTS-STARTPTS"]
        elif offset < 0:
            steps += [f"adelay=delays={-offset * 1000:.3f}:all=1"]
        return ",".join(steps + ["apad"])

    def _add_sound(self):
        """The video with the audio of `self.audio` from its first frame (see `_sound_filter`),
        cut or padded with silence to exactly the video's length (frames / fps); no audio track
        when the source has none."""
        command = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(self._silent),
                   "-i", str(self.audio), "-map", "0:v:0", "-map", "1:a:0?", "-c:v", "copy", "-c:a", "aac",
                   "-b:a", "128k", "-af", self._sound_filter(), "-t", f"{self.frames / self.fps:.6f}",
                   "-movflags", "+faststart", str(self._tmp)]
        self._log.seek(0)
        self._log.truncate()
        return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=self._log).returncode

    def write(self, frame, time=None):
        """Add `frame` (BGR uint8, the size of the first): one output frame, or with `time`
        (seconds, on the clock of the source the frames come from, increasing) on screen from
        then until the next frame's time."""
        if time is None:
            self._emit(frame)
            return
        if self._first_time is None:
            self._first_time = time
        slot = round((time - self._first_time) * self.fps)  # the output frame it is first shown in
        if self._held is not None:
            while self.frames < slot:  # the previous frame stayed on screen until now
                self._emit(self._held)
        self._held = frame

    def _emit(self, frame):
        if self._ffmpeg is None:
            self._start(frame.shape[1], frame.shape[0])
        try:
            self._ffmpeg.stdin.write(np.ascontiguousarray(frame, np.uint8).tobytes())
        except OSError:  # ffmpeg stopped (a full disk, a bad audio file): close() says why
            self.close()
        self.frames += 1

    def _ffmpeg_says(self):
        self._log.seek(0)
        lines = [line for line in self._log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else "no message"

    def close(self):
        """Finish the file and move it into place (a video with no frame is not kept). A file
        that holds fewer frames than were written (a full disk) is an error, and is removed."""
        if self._held is not None:  # the last timed frame: on screen for one output frame
            held, self._held = self._held, None
            self._emit(held)
        if self._ffmpeg is None:
            self._claim.release()
            return
        proc, self._ffmpeg = self._ffmpeg, None
        try:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            returncode = proc.wait()
            if returncode == 0 and self.audio and self._add_sound() != 0:
                said = self._ffmpeg_says()
                if "No space left" in said:
                    raise OSError(errno.ENOSPC, said)
                # The picture is whole: a sound track that cannot be read (damaged, an odd codec)
                # costs the sound, not the video.
                log.warning("%s: the sound of %s could not be copied (%s); the video is written without sound",
                            self.filename, self.audio, said)
                os.replace(self._silent, self._tmp)
            if returncode != 0:
                said = self._ffmpeg_says()
                if "No space left" in said:
                    raise OSError(errno.ENOSPC, said)
                raise DanceError(f"{self.filename}: ffmpeg could not write the video ({said})")
            with opencv_path(self._tmp) as name:
                check = cv2.VideoCapture(name)  # count what is there
            written = int(check.get(cv2.CAP_PROP_FRAME_COUNT)) if check.isOpened() else 0
            check.release()
            if written != self.frames:
                raise DanceError(f"{self.filename}: cannot write it: {written} of {self.frames} frames could be "
                                 f"written (is the disk full?)")
            os.replace(self._tmp, self.filename)
        except OSError as e:
            raise write_error(self.filename, e) from None
        finally:
            self._tmp.unlink(missing_ok=True)
            self._silent.unlink(missing_ok=True)
            self._log.close()
            self._claim.release()

    def discard(self):
        self._held = None
        if self._ffmpeg is not None:
            self._ffmpeg.kill()
            self._ffmpeg.wait()
            self._ffmpeg = None
            self._log.close()
        self._tmp.unlink(missing_ok=True)
        self._silent.unlink(missing_ok=True)
        self._claim.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.discard()
