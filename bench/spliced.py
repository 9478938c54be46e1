"""Partial-fake localisation: real test clips with one 1-3 s synthetic stretch inserted, scored at a 0.5 s hop.

Each spliced clip is a host of at least 8 s (the test clips of one real speaker group joined with cross-fades)
with a stretch cut from one fake test voice inserted at a seeded position, loudness matched and cross-faded
(deepfake_detector.corpus.splice). Its control is built by the very same draws with a stretch of another real
speaker group instead, so both carry the same joins and the same change of voice. Reported:

- utterance level: EER spliced vs control (file score = mean of windows, and max), beside the EER of the
  untouched test fakes vs reals measured in the same run (the baseline);
- segment level: EER over the 0.5 s curve segments of the spliced clips (a segment is fake when at least half of
  it lies in the inserted stretch), and the same with the controls' segments added as real;
- top segment: how often the highest-scoring segment of a spliced clip is a fake one, with the chance rate (the
  mean share of fake segments) beside it.

    python bench/spliced.py [--model models/NAME.keras] [--splits spectrograms/splits.csv] [--clips 40]
                            [--hop 0.5] [--seed 42] [--out benchmarks/spliced.md] [--plot docs/img/x.png]
"""
import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm import tqdm  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="trained model .keras (default: newest in models/, as predict)")
    parser.add_argument("--splits", type=Path, default=Path("spectrograms/splits.csv"),
                        help="splits.csv whose test split supplies the real hosts and fake stretches")
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", type=int, default=40, help="spliced clips (and as many controls)")
    parser.add_argument("--hop", type=float, default=0.5, help="window hop in seconds")
    parser.add_argument("--min-host-s", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/spliced.md"))
    parser.add_argument("--plot", type=Path, help="write the timeline of the first spliced clip here")
    return parser.parse_args(argv)


def segment_labels(curve: list[dict], fake_start_s: float, fake_end_s: float) -> np.ndarray:
    """1 for a curve segment at least half inside [fake_start_s, fake_end_s], else 0."""
    labels = []
    for segment in curve:
        inside = max(0.0, min(segment["end"], fake_end_s) - max(segment["start"], fake_start_s))
        labels.append(int(inside >= 0.5 * (segment["end"] - segment["start"])))
    return np.array(labels)


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepfake_detector.corpus import splice
    from deepfake_detector.data import audio
    from deepfake_detector.model import inference, model_store
    from deepfake_detector.report.metrics import compute_eer

    started = time.perf_counter()
    detector = model_store.load_detector(args.model or model_store.latest_model(Path("models")))
    params, rate = detector.params, detector.params.sample_rate
    files = pd.read_csv(args.splits).drop_duplicates("source_path")
    files = files[files["split"] == args.split]
    waveforms = {path: audio.load_audio(Path(path), params)[0] for path in tqdm(files["source_path"], desc="decoding")}
    groups = {label: {group: [waveforms[p] for p in sorted(rows["source_path"])]
                      for group, rows in files[files["class"] == label].groupby("group")}
              for label in ("real", "fake")}
    if len(groups["real"]) < 2 or not groups["fake"]:
        print("error: need at least two real groups and one fake group in the split", file=sys.stderr)
        return 1

    def score(waveform):
        return inference.score_waveform(detector, waveform, hop_s=args.hop)

    # Untouched test files: the baseline the spliced figures are compared with.
    untouched = [(int(label == "fake"), score(waveforms[path])["p_fake"])
                 for path, label in zip(files["source_path"], files["class"])]
    picker = np.random.default_rng(args.seed)
    real_names, fake_names = sorted(groups["real"]), sorted(groups["fake"])
    spliced, controls, example = [], [], None
    for number in tqdm(range(args.clips), desc="spliced clips"):
        host, other = picker.choice(len(real_names), size=2, replace=False)
        fake_group = fake_names[picker.integers(len(fake_names))]
        hosts = [groups["real"][real_names[host]][i] for i in picker.permutation(len(groups["real"][real_names[host]]))]
        draw_seed = args.seed * 1000 + number  # the same draws for the clip and its control
        for donors, out in ((groups["fake"][fake_group], spliced), (groups["real"][real_names[other]], controls)):
            clip = splice.make_spliced_clip(hosts, donors, np.random.default_rng(draw_seed), rate, args.min_host_s)
            result = score(clip.waveform)
            out.append((clip, result))
            if example is None and out is spliced:
                example = (clip, result)

    mean_scores = [result["p_fake"] for _, result in spliced + controls]
    max_scores = [max(w["p_fake"] for w in result["windows"]) for _, result in spliced + controls]
    utterance_labels = [1] * len(spliced) + [0] * len(controls)
    seg_scores, seg_labels, hits, chance = [], [], [], []
    for clip, result in spliced:
        labels = segment_labels(result["curve"], clip.fake_start_s, clip.fake_end_s)
        scores = np.array([segment["p_fake"] for segment in result["curve"]])
        seg_scores.append(scores)
        seg_labels.append(labels)
        hits.append(labels[int(np.argmax(scores))])
        chance.append(labels.mean())
    control_segments = np.concatenate([[s["p_fake"] for s in result["curve"]] for _, result in controls])
    seg_scores, seg_labels = np.concatenate(seg_scores), np.concatenate(seg_labels)
    eer = lambda labels, scores: compute_eer(np.asarray(labels), np.asarray(scores))[0]  # noqa: E731
    base_eer = eer(*zip(*untouched))
    rows = [
        ("utterance: untouched test fakes vs reals (baseline)", base_eer, len(untouched)),
        ("utterance: spliced vs control, mean of windows", eer(utterance_labels, mean_scores), len(mean_scores)),
        ("utterance: spliced vs control, max of windows", eer(utterance_labels, max_scores), len(max_scores)),
        ("segment (0.5 s): within spliced clips", eer(seg_labels, seg_scores), len(seg_scores)),
        ("segment (0.5 s): spliced + control clips",
         eer(np.r_[seg_labels, np.zeros(len(control_segments))], np.r_[seg_scores, control_segments]),
         len(seg_scores) + len(control_segments)),
    ]
    durations = [clip.duration_s for clip, _ in spliced]
    lengths = [clip.fake_end_s - clip.fake_start_s for clip, _ in spliced]
    commit = (model_store.git_commit() or "unknown")[:7]
    lines = [f"# Spliced-clip localisation ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, git {commit})", "",
             f"Command: `python bench/spliced.py {' '.join(argv or sys.argv[1:])}`", "",
             f"Model `{detector.name}`, {params.window_s:g} s windows every {args.hop:g} s; {len(spliced)} spliced "
             f"clips and {len(controls)} controls of {np.mean(durations):.1f} s on average "
             f"({min(durations):.1f}-{max(durations):.1f} s) with a {np.mean(lengths):.2f} s inserted stretch on "
             f"average; {len(untouched)} untouched {args.split} files. {time.perf_counter() - started:.0f} s in all.",
             "", "| what | EER | vs baseline | items |", "|---|---|---|---|"]
    lines += [f"| {name} | {value:.3f} | {value / base_eer:.2f}x | {count} |" for name, value, count in rows]
    lines += ["", f"Top segment in the inserted stretch: **{np.mean(hits):.3f}** of spliced clips "
                  f"(chance {np.mean(chance):.3f}, the mean share of fake segments; ratio "
                  f"{np.mean(hits) / np.mean(chance):.2f}x)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.plot:
        clip, result = example
        result["file"] = f"spliced clip (inserted synthetic stretch {clip.fake_start_s:.1f}-{clip.fake_end_s:.1f} s)"
        inference.plot_timeline(result, clip.waveform, params, args.plot,
                                known_span=(clip.fake_start_s, clip.fake_end_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
