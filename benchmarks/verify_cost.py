"""What verification costs in a scan: the same folder scanned with --verify off and on.

    python benchmarks/verify_cost.py FOLDER [--model sscd-onnx] [--device auto]

Prints, for each mode, the images scanned, the pairs verified and rejected, seconds per stage,
and verification's share of the total scan time.
"""

from __future__ import annotations

import argparse
import platform

import torch

from dedup_gpu.pipeline import open_encoder, scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--model", default="sscd-onnx")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, CUDA {'available' if torch.cuda.is_available() else 'absent'}"
    )
    encoder = open_encoder(args.model, args.device)
    for mode in ("off", "on"):
        report = scan([args.folder], encoder=encoder, verify=mode).report
        timings = report.timings_s
        stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in timings.items())
        print(
            f"verify {mode}: {report.counts['images_scanned']} images, "
            f"{report.verification['pairs_checked']} pairs verified "
            f"({report.verification['pairs_rejected']} rejected), groups "
            f"{report.counts['groups']}; seconds: {stages}; "
            f"verification share {timings['verify'] / timings['total']:.1%}"
        )


if __name__ == "__main__":
    main()
