"""Frames per onnxruntime ``run``: CPU ms per frame of the default detector at batch 1, 2, 4.

    python -m bench.batch_inference [--rounds 30] [--batches 1,2,4] [--sizes 416x288]

The converted YOLOv3-tiny has a batch of 1 written into its heads' reshapes; this bench
makes a copy whose batch is free (the reshapes copy the input's first dimension), checks
that a batch of frames gives each frame's own outputs, and times it on one thread, fp32
and int8 (the int8 copy quantized from the fp32 batch model with the recipe of
:mod:`workers.local.quantization`). The inputs are real dog-clip frames as the detector
prepares them. Each round runs every configuration once, in turn, so the machine's load
hits all alike; printed per configuration: CPU ms per frame (median over rounds; the
process's CPU time, which a busy machine does not inflate the way it does wall time) and
wall ms per frame (fastest round).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DOG = REPO.parent / "shared" / "data" / "videos" / "sam2_01_dog.mp4"


def free_batch(source: Path, destination: Path) -> Path:
    """A copy of the converted model whose batch dimension is free."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    reshape_shapes = {node.input[1] for node in model.graph.node if node.op_type == "Reshape"}
    concat_parts = {
        name
        for node in model.graph.node
        if node.op_type == "Concat" and node.output[0] in reshape_shapes
        for name in node.input
    }
    for tensor in model.graph.initializer:
        if tensor.name in reshape_shapes | concat_parts:
            values = numpy_helper.to_array(tensor)
            if (
                values.dtype == np.int64
                and values.ndim == 1
                and values.size >= 3
                and values[0] == 1
            ):
                values = values.copy()
                values[0] = 0  # Reshape: 0 copies the input's dimension
                tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    onnx.checker.check_model(model)
    onnx.save(model, str(destination))
    return destination


def main() -> None:
    import onnxruntime

    from workers.local.backend import LocalTrackingOptions, load_model
    from workers.local.detectors.base import open_session
    from workers.local.quantization import calibration_blobs, quantize_model, sample_frames

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batches", default="1,2,4")
    arguments = parser.parse_args()
    batches = [int(b) for b in arguments.batches.split(",")]
    detector = load_model(LocalTrackingOptions(detector_precision="fp32", inference_threads=1))
    width = max(detector.input_height, detector.input_width)
    blobs = calibration_blobs(detector, sample_frames(DOG, width, 16))
    frames = np.concatenate(blobs[: max(batches)])
    name = detector.session.get_inputs()[0].name
    with tempfile.TemporaryDirectory(prefix="batch-") as folder:
        fp32_path = free_batch(detector.model_path, Path(folder) / "batch.onnx")
        int8_path = quantize_model(fp32_path, Path(folder) / "batch-int8.onnx", name, blobs)
        sessions: dict[str, onnxruntime.InferenceSession] = {
            "fp32": open_session(fp32_path, 1),
            "int8": open_session(int8_path, 1),
        }
        # A batch gives each frame its own outputs (the reshapes keep frames apart).
        for label, session in sessions.items():
            together = session.run(None, {name: frames[:2]})[0]
            apart = [session.run(None, {name: frames[i : i + 1]})[0][0] for i in range(2)]
            difference = max(float(np.abs(together[i] - apart[i]).max()) for i in range(2))
            print(f"{label}: max abs difference, batch of 2 against one by one: {difference:.2g}")
        cpu: dict[tuple[str, int], list[float]] = {}
        wall: dict[tuple[str, int], list[float]] = {}
        for _ in range(arguments.rounds):
            for label, session in sessions.items():
                for batch in batches:
                    feed = {name: frames[:batch]}
                    started, used = time.perf_counter(), time.process_time()
                    session.run(None, feed)
                    wall.setdefault((label, batch), []).append(
                        (time.perf_counter() - started) / batch
                    )
                    cpu.setdefault((label, batch), []).append((time.process_time() - used) / batch)
    print(f"\ninput {list(frames.shape[1:])}, one thread, {arguments.rounds} rounds\n")
    print("| precision | frames per run | CPU ms per frame, median | wall ms per frame, fastest |")
    print("|---|---|---|---|")
    for (label, batch), values in cpu.items():
        print(
            f"| {label} | {batch} | {1000 * np.median(values):.1f} "
            f"| {1000 * min(wall[(label, batch)]):.1f} |"
        )


if __name__ == "__main__":
    main()
