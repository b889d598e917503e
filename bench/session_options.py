"""onnxruntime session options for the detector, measured in turn on one real frame.

    python -m bench.session_options [--model default|PATH] [--rounds 40]

Each configuration gets its own session of the same model; every round runs each session
once on the same input (a dog-clip frame as the detector prepares it), so a load change of
this shared machine hits all alike. Printed per configuration: wall ms per run (fastest and
median) and CPU ms per run (all of the process's threads: onnxruntime's spinning threads
show there), and whether its outputs equal the default session's (max abs difference).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime

from workers.local.detectors.base import ORT_LOG_ERRORS_ONLY

DOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "sam2_01_dog.mp4"


def session(path: Path, threads: int, level: str, arena: bool, spin: bool | None = None):  # type: ignore[no-untyped-def]
    options = onnxruntime.SessionOptions()
    options.log_severity_level = ORT_LOG_ERRORS_ONLY
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, level)
    options.enable_cpu_mem_arena = arena
    if spin is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    from workers.local.backend import LocalTrackingOptions, load_model
    from workers.local.quantization import calibration_blobs
    from workers.media.video import iter_frames

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="default")
    parser.add_argument("--rounds", type=int, default=40)
    arguments = parser.parse_args()
    detector = load_model(
        LocalTrackingOptions(
            detector=None if arguments.model == "default" else arguments.model,
            inference_threads=1,
        )
    )
    width = max(detector.input_height, detector.input_width)
    image = next(iter(iter_frames(DOG, start=3.0, max_width=width))).image
    blob = calibration_blobs(detector, [image])[0]
    path = detector.model_path
    name = detector.session.get_inputs()[0].name
    configs = {
        "1 thread, ORT_ENABLE_ALL, arena (default)": session(path, 1, "ORT_ENABLE_ALL", True),
        "1 thread, ORT_ENABLE_EXTENDED": session(path, 1, "ORT_ENABLE_EXTENDED", True),
        "1 thread, ORT_ENABLE_BASIC": session(path, 1, "ORT_ENABLE_BASIC", True),
        "1 thread, ORT_DISABLE_ALL": session(path, 1, "ORT_DISABLE_ALL", True),
        "1 thread, no mem arena": session(path, 1, "ORT_ENABLE_ALL", False),
        "2 threads (spinning, default)": session(path, 2, "ORT_ENABLE_ALL", True),
        "2 threads, no spinning": session(path, 2, "ORT_ENABLE_ALL", True, spin=False),
    }
    reference = None
    walls: dict[str, list[float]] = {label: [] for label in configs}
    cpus: dict[str, list[float]] = {label: [] for label in configs}
    differences: dict[str, float] = {}
    for label, s in configs.items():
        outputs = s.run(None, {name: blob})
        if reference is None:
            reference = outputs
        differences[label] = max(
            float(np.abs(a - b).max()) for a, b in zip(outputs, reference, strict=True)
        )
    for _ in range(arguments.rounds):
        for label, s in configs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            s.run(None, {name: blob})
            walls[label].append(time.perf_counter() - wall)
            cpus[label].append(time.process_time() - cpu)
    print(f"{path.name}, input {list(blob.shape)}, {arguments.rounds} rounds\n")
    print("| session | wall ms fastest / median | CPU ms median | max abs output difference |")
    print("|---|---|---|---|")
    for label in configs:
        print(
            f"| {label} | {1000 * min(walls[label]):.1f} / {1000 * np.median(walls[label]):.1f} "
            f"| {1000 * np.median(cpus[label]):.1f} | {differences[label]:.2g} |"
        )


if __name__ == "__main__":
    main()
