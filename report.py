"""evaluate.py's results as Markdown tables, and as strict JSON (`finite`). Every table is built
from one list of its columns, so its header, its `---|` line and its cells cannot drift apart:
a new figure of the held-out table is a function and a line of COLUMNS."""
import numpy as np

from metrics import NOVELTY_BINS
from protocols import PLACED_MARGINS

SUMMARY_KEYS = ("held_out", "novel_q4", "unseen", "cross", "hard", "placed")
SUMMARY_TITLES = ("held-out", "held-out, most novel quartile", "unseen edits", "cross-person (all clips)",
                  "harder clips (all)", "placed")
LIVE_FIELDS = ("fps", "frames", "captured", "dropped", "latency_ms", "latency_p90_ms")


def finite(value):
    """The results with inf and nan as None, so the JSON is strict (PSNR of identical frames is inf)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def table(titles, rows):
    """A Markdown table: its header of `titles`, the `---|` line, then each row (a list of cells)."""
    return ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)] + \
        ["| " + " | ".join(row) + " |" for row in rows]


def pct(row):
    """The detection rate of a fidelity row, in percent."""
    return f"{100 * row['detection_rate']:.1f}%"


def cell(row):
    """'detected / joint error' of a fidelity row, for the wide tables."""
    if row is None or not row["frames"]:
        return "-"
    return f"{pct(row)} / " + ("-" if np.isnan(row["joint_error_px"]) else f"{row['joint_error_px']:.1f}")


def _flicker(r, real):
    return f"{r['flicker']:.4f} ({r['flicker_ratio']:.2f}x of {real:.4f})"


def _speed(r, real):
    return f"{r['single_fps']:.0f} / {r['batch_fps']:.0f}" if "single_fps" in r else "-"


def _demo(r, real):
    return f"{r['demo_fps']:.1f}" if "demo_fps" in r else "-"


# The held-out table: (title, cell of a row r, given the real frames' flicker).
COLUMNS = [
    ("native", lambda r, real: f"{r['native_size']}"),
    ("L1", lambda r, real: f"{r['l1']:.4f}"),
    ("PSNR", lambda r, real: f"{r['psnr']:.2f}"),
    ("SSIM", lambda r, real: f"{r['ssim']:.3f}"),
    ("box L1", lambda r, real: f"{r['box_l1']:.4f}"),
    ("box PSNR", lambda r, real: f"{r['box_psnr']:.2f}"),
    ("box SSIM", lambda r, real: f"{r['box_ssim']:.3f}"),
    ("detected", lambda r, real: pct(r)),
    ("joint err (px)", lambda r, real: f"{r['joint_error_px']:.2f}"),
    ("flicker (real)", _flicker),
    ("fps 1 / batch", _speed),
    ("demo fps", _demo),
]


def held_out_table(results):
    """The held-out table: one row per generator (and smoothed variant), COLUMNS' figures."""
    s = results["settings"]
    smoothed = (f" Rows `{s['smoothed']}+X` are driven by the test skeletons smoothed over time with X (see "
                f"Motion.py); their pose error is against those smoothed skeletons.") if s["smoothed"] else ""
    real = results["rows"]["real"]["flicker"]
    return [f"Test footage: {s['test']}, {s['test_frames']} frames at {s['frame_size']}x{s['frame_size']}; "
            f"outputs smaller than that are upsampled (native size in the table).{smoothed}", ""] + \
        table(["generator"] + [title for title, _ in COLUMNS],
              [[name] + [fmt(r, real) for _, fmt in COLUMNS] for name, r in results["rows"].items()])


def cross_tables(results):
    """One table per cross-person clip, and the harder clips' table."""
    s, lines = results["settings"], []
    for source, tab in results["cross"].items():
        nov = results["novelty"]["clips"][source]
        lines += ["", f"Cross-person: {source} drives the target ({next(iter(tab.values()))['frames']} frames, "
                      f"as the demo drives it: {s['cross_smoother']}-smoothed, normalised, cropped); pose novelty: "
                      f"median {nov['median']:.3f}, {100 * nov['quartile_shares'][3]:.0f}% of its poses beyond the "
                      f"held-out third quartile", ""]
        lines += table(["generator", "detected", "joint err (px)"],
                       [[n, pct(r), f"{r['joint_error_px']:.2f}"] for n, r in tab.items()])
    hard = results.get("hard", {})
    if hard.get("clips"):
        names = list(next(iter(hard["clips"].values())))
        lines += ["", f"Harder driving clips: each cross-person clip turned by +-20 and +-35 degrees, mirrored, and at "
                      f"half size in a frame of its size (hard_clips.py), every {hard['settings']['every']}nd frame, "
                      f"driving the target as the demo drives it. Cells: detected / joint error (px); novelty: the "
                      f"clip's median pose novelty and its share beyond the held-out third quartile.", ""]
        lines += table(["clip", "frames", "novelty", *names],
                       [[clip, f"{next(iter(tab.values()))['frames']}",
                         f"{hard['novelty'][clip]['median']:.3f} ({100 * hard['novelty'][clip]['quartile_shares'][3]:.0f}%)",
                         *(cell(tab[n]) for n in names)] for clip, tab in hard["clips"].items()])
    return lines


def live_table(results):
    """The live table, when the live protocol ran."""
    if "live" not in results:
        return []
    live = results["live"]
    return ["", f"Live: {live['source']} played in real time ({live['source_fps']:g} fps) as a camera would "
                f"deliver it, through the demo's live path ({live['generator']}, {live['smoother']} smoothing); "
                f"each generated frame as it is, then slowed on purpose.", ""] + \
        table(["generator slowed by", "shown fps", "frames shown / captured", "dropped", "latency median (ms)",
               "latency p90 (ms)"],
              [[k, f"{r['fps']:.1f}", f"{r['frames']} / {r['captured']}", f"{r['dropped']}",
                f"{r['latency_ms']:.0f}", f"{r['latency_p90_ms']:.0f}"] for k, r in live["rows"].items()])


def markdown(results):
    """The tables of a results dict, as Markdown."""
    return "\n".join(held_out_table(results) + cross_tables(results) + live_table(results) + [""]
                     + novelty_tables(results) + unseen_table(results) + placed_table(results)
                     + summary_table(results))


def novelty_tables(results):
    """The held-out and cross-person rows per novelty quartile, and the poses beyond the fourth."""
    nov = results["novelty"]
    e1, e2, e3 = nov["edges"]
    lines = [f"Pose novelty: each driving pose's distance to the nearest training pose of the target (mean "
             f"joint distance, position and scale removed, in units of the pose's RMS spread). Quartile edges "
             f"from the held-out poses: {e1:.3f} / {e2:.3f} / {e3:.3f} (median {nov['held_out_median']:.3f}). "
             f"Cells: detected / joint error (px).", ""]
    lines += table(["generator", "held-out Q1", "Q2", "Q3", "Q4 (most novel)", "cross-person Q1", "Q2", "Q3", "Q4"],
                   [[name, *(cell(x) for x in r["held_out"] + (r.get("cross") or [None] * 4))]
                    for name, r in nov["rows"].items()])
    sets = [k for k in ("held_out", "cross", "hard") if any(f"{k}_beyond" in r for r in nov["rows"].values())]
    lines += ["", "Beyond the fourth quartile: the poses of each set (held-out, cross-person, harder clips) whose "
                  "novelty exceeds the bin. Cells: detected / joint error (px) (of how many poses).", ""]
    rows = []
    for name, r in nov["rows"].items():
        cells = [x for k in sets for x in (r.get(f"{k}_beyond") or [None] * len(NOVELTY_BINS))]
        rows.append([name, *(f"{cell(x)} (of {x['frames']})" if x else "-" for x in cells)])
    bins = [f"{k.replace('_', '-')} > {b:g}" for k in sets for b in NOVELTY_BINS]
    return lines + table(["generator", *bins], rows)


def unseen_table(results):
    """The edited poses: every generator on all of them and per family."""
    unseen = results["unseen"]
    u = unseen["settings"]
    return ["", f"Unseen poses: {u['poses']} held-out skeletons edited (seed {u['seed']}, every bone's length kept) "
                f"into poses the target never made; median novelty {unseen['novelty_median']:.3f}, "
                f"{100 * unseen['beyond_held_out_q3']:.0f}% beyond the held-out third quartile. Pose fidelity "
                f"against the edited skeleton; cells: detected / joint error (px).", ""] + \
        table(["generator", "all", *u["families"]],
              [[name, cell(r), *(cell(r["families"][f]) for f in u["families"])] for name, r in unseen["rows"].items()])


def placed_table(results):
    """The crops' pose fidelity beside the placed panels'."""
    p = results["placed"]["settings"]
    return ["", f"At the size people watch: one test frame in {p['every']}, its crop placed into the target's "
                f"{p['frame_size'][0]}x{p['frame_size'][1]} frame as the demo's {p['panel']}x{p['panel']} right "
                f"panel places it, re-detected there ({p['frames']} frames; one static detector for every row, "
                f"its border {p['redetect_margin']:g}, the one of {', '.join(f'{m:g}' for m in PLACED_MARGINS)} "
                f"that finds the most real frames); joint error in panel pixels.", ""] + \
        table(["generator", "crop: detected / err (px of 128)", "placed: detected / err (px of the panel)"],
              [[name, cell(results["rows"][name]), cell(r)] for name, r in results["placed"]["rows"].items()])


def summary_table(results):
    """Per generator: its detection and joint error on each set of what users will do."""
    return ["", "Summary: detected / joint error (px) of each generator on what users will do.", ""] + \
        table(["generator", *SUMMARY_TITLES],
              [[name, *(cell(r.get(k)) for k in SUMMARY_KEYS)] for name, r in results["summary"].items()])
