#!/usr/bin/env python3
"""Writes forward-value fixtures for the Tensor kernels (Tests/TensorTests/Fixtures/*.json).

The references are pure numpy, written independently of the Swift code (direct sums over kernel
taps in float64, PyTorch's documented formulas). Layout is NHWC, conv weights [r, s, c, k], as in
the Swift API.

    python3 scripts/make_tensor_fixtures.py            # (re)write the fixtures
    python3 scripts/make_tensor_fixtures.py --check-torch   # also compare numpy with PyTorch

`--check-torch` needs torch importable (install it in a virtual environment outside the repo);
it permutes to NCHW, runs torch.nn.functional and prints the max difference per case.
Fixture format: {"kernel": ..., "params": {...}, "inputs": {name: {"shape", "data"}},
"outputs": {name: {"shape", "data"}}}, data row-major float32 values.
"""
import argparse
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "TensorTests", "Fixtures")


def tensor(a):
    a = np.asarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def conv2d(x, w, b, stride, padding, dilation):
    """x [n,h,w,c], w [r,s,c,k] -> [n,oh,ow,k]; explicit sum over the r*s taps in float64."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    n, h, wd, c = x.shape
    r, s, _, k = w.shape
    oh = (h + 2 * padding - dilation * (r - 1) - 1) // stride + 1
    ow = (wd + 2 * padding - dilation * (s - 1) - 1) // stride + 1
    xp = np.zeros((n, h + 2 * padding, wd + 2 * padding, c))
    xp[:, padding:padding + h, padding:padding + wd, :] = x
    out = np.zeros((n, oh, ow, k))
    for ky in range(r):
        for kx in range(s):
            y0, x0 = ky * dilation, kx * dilation
            patch = xp[:, y0:y0 + stride * (oh - 1) + 1:stride, x0:x0 + stride * (ow - 1) + 1:stride, :]
            out += np.einsum("nhwc,ck->nhwk", patch, w[ky, kx])
    if b is not None:
        out += b.astype(np.float64)
    return out


def batch_norm_train(x, scale, offset, eps=1e-5):
    x64 = x.astype(np.float64).reshape(-1, x.shape[-1])
    mean = x64.mean(axis=0)
    var = ((x64 - mean) ** 2).mean(axis=0)
    inv = 1 / np.sqrt(var + eps)
    y = (x64 - mean) * inv * scale + offset
    return y.reshape(x.shape), mean, inv, var


def pool(x, size, stride, op):
    n, h, w, c = x.shape
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.zeros((n, oh, ow, c))
    for oy in range(oh):
        for ox in range(ow):
            win = x[:, oy * stride:oy * stride + size, ox * stride:ox * stride + size, :].astype(np.float64)
            out[:, oy, ox, :] = op(win.reshape(n, -1, c), axis=1)
    return out


def source_index(d, in_size, out_size):
    """PyTorch area_pixel_compute_source_index, align_corners=False, linear mode."""
    scale = in_size / out_size
    src = scale * (d + 0.5) - 0.5
    return max(src, 0.0)


def resize_bilinear(x, height, width):
    n, h, w, c = x.shape
    out = np.zeros((n, height, width, c))
    for oy in range(height):
        sy = source_index(oy, h, height)
        y0 = min(int(np.floor(sy)), h - 1)
        y1 = y0 + 1 if y0 < h - 1 else y0
        ly = sy - y0
        for ox in range(width):
            sx = source_index(ox, w, width)
            x0 = min(int(np.floor(sx)), w - 1)
            x1 = x0 + 1 if x0 < w - 1 else x0
            lx = sx - x0
            out[:, oy, ox, :] = ((1 - ly) * ((1 - lx) * x[:, y0, x0, :] + lx * x[:, y0, x1, :])
                                 + ly * ((1 - lx) * x[:, y1, x0, :] + lx * x[:, y1, x1, :]))
    return out


def make_cases(rng):
    cases = []
    conv_configs = [
        # name, n, h, w, c, k, r, s, stride, padding, dilation, bias
        ("conv3x3_s1_p1", 2, 6, 7, 3, 4, 3, 3, 1, 1, 1, False),
        ("conv3x3_s2_p1_bias", 1, 9, 8, 2, 3, 3, 3, 2, 1, 1, True),
        ("conv3x3_s1_p2_d2", 1, 7, 9, 3, 2, 3, 3, 1, 2, 2, True),
        ("conv3x3_s2_p0", 2, 7, 6, 4, 3, 3, 3, 2, 0, 1, False),
        ("conv1x1_bias", 2, 5, 4, 6, 5, 1, 1, 1, 0, 1, True),
        ("conv1x1_s2", 1, 7, 5, 3, 2, 1, 1, 2, 0, 1, False),
        ("conv5x5_s1_p2", 1, 8, 7, 2, 3, 5, 5, 1, 2, 1, True),
    ]
    for name, n, h, w, c, k, r, s, st, p, d, has_bias in conv_configs:
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        wt = (rng.standard_normal((r, s, c, k)) * 0.5).astype(np.float32)
        b = rng.standard_normal(k).astype(np.float32) if has_bias else None
        inputs = {"input": tensor(x), "weight": tensor(wt)}
        if b is not None:
            inputs["bias"] = tensor(b)
        cases.append({
            "name": name, "kernel": "conv2d",
            "params": {"stride": st, "padding": p, "dilation": d},
            "inputs": inputs,
            "outputs": {"output": tensor(conv2d(x, wt, b, st, p, d))},
        })
    for name, shape in [("batchnorm_a", (2, 5, 6, 3)), ("batchnorm_b", (3, 2, 3, 5))]:
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        c = shape[-1]
        scale = rng.standard_normal(c).astype(np.float32)
        offset = rng.standard_normal(c).astype(np.float32)
        running_mean = rng.standard_normal(c).astype(np.float32)
        running_var = rng.uniform(0.5, 2, c).astype(np.float32)
        y, mean, inv, var = batch_norm_train(x, scale, offset)
        count = x.size // c
        momentum = 0.1
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * count / (count - 1)
        inference = (x.astype(np.float64) - running_mean) / np.sqrt(running_var.astype(np.float64) + 1e-5) * scale + offset
        cases.append({
            "name": name, "kernel": "batchnorm",
            "params": {"epsilon": 1e-5, "momentum": momentum},
            "inputs": {"input": tensor(x), "scale": tensor(scale), "offset": tensor(offset),
                       "runningMean": tensor(running_mean), "runningVariance": tensor(running_var)},
            "outputs": {"output": tensor(y), "mean": tensor(mean),
                        "inverseStandardDeviation": tensor(inv),
                        "updatedRunningMean": tensor(new_mean),
                        "updatedRunningVariance": tensor(new_var),
                        "inferenceOutput": tensor(inference)},
        })
    for name, shape, size, stride in [("pool_2x2", (2, 6, 8, 3), 2, 2), ("pool_3s2", (1, 9, 7, 2), 3, 2),
                                      ("pool_2s1_odd", (1, 5, 7, 2), 2, 1)]:
        x = rng.standard_normal(shape).astype(np.float32)
        cases.append({
            "name": name, "kernel": "pool", "params": {"size": size, "stride": stride},
            "inputs": {"input": tensor(x)},
            "outputs": {"max": tensor(pool(x, size, stride, np.max)),
                        "average": tensor(pool(x, size, stride, np.mean)),
                        "global": tensor(x.astype(np.float64).mean(axis=(1, 2), keepdims=True))},
        })
    for name, shape, height, width in [("resize_up2", (2, 3, 4, 3), 6, 8), ("resize_down2", (1, 8, 6, 2), 4, 3),
                                       ("resize_odd_up", (1, 5, 7, 2), 12, 9), ("resize_odd_down", (1, 11, 13, 2), 4, 6),
                                       ("resize_mixed", (2, 4, 9, 1), 7, 5)]:
        x = rng.standard_normal(shape).astype(np.float32)
        cases.append({
            "name": name, "kernel": "resize", "params": {"height": height, "width": width},
            "inputs": {"input": tensor(x)},
            "outputs": {"output": tensor(resize_bilinear(x, height, width))},
        })
    return cases


def array(t):
    return np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])


def check_torch(cases):
    import torch
    import torch.nn.functional as F

    def nchw(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).double()

    def back(t):
        return t.permute(0, 2, 3, 1).numpy()

    worst = 0.0
    for case in cases:
        ins, outs, p = case["inputs"], case["outputs"], case["params"]
        x = array(ins["input"])
        diffs = {}
        if case["kernel"] == "conv2d":
            w = torch.from_numpy(array(ins["weight"]).transpose(3, 2, 0, 1).copy()).double()
            b = torch.from_numpy(array(ins["bias"])).double() if "bias" in ins else None
            y = F.conv2d(nchw(x), w, b, stride=p["stride"], padding=p["padding"], dilation=p["dilation"])
            diffs["output"] = np.abs(back(y) - array(outs["output"])).max()
        elif case["kernel"] == "batchnorm":
            rm = torch.from_numpy(array(ins["runningMean"])).double()
            rv = torch.from_numpy(array(ins["runningVariance"])).double()
            scale = torch.from_numpy(array(ins["scale"])).double()
            offset = torch.from_numpy(array(ins["offset"])).double()
            inf = F.batch_norm(nchw(x), rm.clone(), rv.clone(), scale, offset, training=False, eps=1e-5)
            diffs["inference"] = np.abs(back(inf) - array(outs["inferenceOutput"])).max()
            rm2, rv2 = rm.clone(), rv.clone()
            y = F.batch_norm(nchw(x), rm2, rv2, scale, offset, training=True, momentum=0.1, eps=1e-5)
            diffs["output"] = np.abs(back(y) - array(outs["output"])).max()
            diffs["runningMean"] = np.abs(rm2.numpy() - array(outs["updatedRunningMean"])).max()
            diffs["runningVariance"] = np.abs(rv2.numpy() - array(outs["updatedRunningVariance"])).max()
        elif case["kernel"] == "pool":
            diffs["max"] = np.abs(back(F.max_pool2d(nchw(x), p["size"], p["stride"])) - array(outs["max"])).max()
            diffs["average"] = np.abs(back(F.avg_pool2d(nchw(x), p["size"], p["stride"])) - array(outs["average"])).max()
            diffs["global"] = np.abs(back(F.adaptive_avg_pool2d(nchw(x), 1)) - array(outs["global"])).max()
        elif case["kernel"] == "resize":
            y = F.interpolate(nchw(x), size=(p["height"], p["width"]), mode="bilinear", align_corners=False)
            diffs["output"] = np.abs(back(y) - array(outs["output"])).max()
            # The scale_factor=2 path (what a U-Net calls) must agree too.
            if p["height"] == 2 * x.shape[1] and p["width"] == 2 * x.shape[2]:
                y2 = F.interpolate(nchw(x), scale_factor=2, mode="bilinear", align_corners=False)
                diffs["scale_factor_2"] = np.abs(back(y2) - array(outs["output"])).max()
        print(f"torch check {case['name']:22s} " + "  ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
        worst = max(worst, *diffs.values())
    print(f"torch check: worst max difference {worst:.2e} (torch {torch.__version__})")
    if worst > 1e-5:
        raise SystemExit("numpy references disagree with torch")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-torch", action="store_true", help="compare the references with torch")
    args = parser.parse_args()
    cases = make_cases(np.random.default_rng(20261125))
    os.makedirs(OUT, exist_ok=True)
    for case in cases:
        with open(os.path.join(OUT, case["name"] + ".json"), "w") as f:
            json.dump(case, f, separators=(",", ":"))
    print(f"wrote {len(cases)} fixtures to {os.path.normpath(OUT)}")
    if args.check_torch:
        check_torch(cases)


if __name__ == "__main__":
    main()
