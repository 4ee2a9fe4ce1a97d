"""onnxruntime-python reference on the same graph flickertag runs (exported with its
per-channel conv means): all 240 frames, numpy rfft, the same SNR.
Usage: reference_ort.py MODEL.onnx TEST_BATCH INDICES.json OUT_DIR"""
import json, sys, time
import numpy as np
import onnxruntime as ort
from common import authors_snr_scores, frames, load_cifar_test, N_FRAMES
from reference_torch import save


def main(model_path, batch_path, indices_path, out_dir):
    so = ort.SessionOptions()
    so.intra_op_num_threads = len(__import__("os").sched_getaffinity(0))
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()][1:]
    indices = json.load(open(indices_path))
    images = load_cifar_test(batch_path, indices)
    t0, c0 = time.time(), time.process_time()
    all_amp, all_scores = [], []
    for img in images:
        x = frames(img)
        outs = [sess.run(names, {"input": x[b : b + 80]}) for b in range(0, N_FRAMES, 80)]
        amps = []
        for t in range(len(names)):
            series = np.concatenate([o[t] for o in outs])[:, :, 0, 0].astype(np.float64)  # [frames, C]
            amps.append((np.abs(np.fft.rfft(series, axis=0)) / N_FRAMES).T)
        all_scores.append([authors_snr_scores(a) for a in amps])
        all_amp.append([a.astype(np.float32) for a in amps])
    config = {"onnxruntime": ort.__version__, "threads": so.intra_op_num_threads, "batch": 80,
              "loop_cpu_s": time.process_time() - c0}
    save(out_dir, all_amp, all_scores, time.time() - t0, len(indices), config)


if __name__ == "__main__":
    main(*sys.argv[1:])
