#!/usr/bin/env python3
"""PyTorch twins of atso-transfer's networks, for checkpoints moved with
`atso-transfer export --format torch` and `atso-transfer import --format torch`.

Needs only PyTorch (the `safetensors` package is used when installed, else a small
reader/writer of the same format below).

  UNet      the U-Net; with widths (16, 32, 64, 128) it is the reference network of
            shared/bench/torch_reference_unet.py (RefUNet), with the same state_dict keys:
            enc1.0.weight, enc1.1.{weight,bias,running_mean,running_var,num_batches_tracked},
            enc1.3.*, enc1.4.*, ..., bott.*, dec3.* ... dec1.*, head.weight, head.bias
  DeepLab   the DeepLab-v3-style network: stem1..stem6, stage4, aspp.{pointwise, atrous1..,
            pooling}, projection, classifier

In Python:
  from torch_networks import load_network
  model = load_network("unet.safetensors").eval()   # an `export` output: builds and loads
  logits = model(images)   # float32 NCHW RGB, (pixel / 255 - mean) / std, ImageNet mean/std

Command line (used by the package's tests):
  torch_networks.py logits MODEL.safetensors IMAGES.safetensors OUT.safetensors
      [--reference shared/bench/torch_reference_unet.py --classes N]
      runs the network of an export (or the reference RefUNet(classes=N), loaded with
      strict=True) on the tensor "images" [n, 3, h, w]; writes "logits" [n, classes, h, w]
  torch_networks.py make OUT.safetensors --arch unet|deeplab --widths 16,32,64,128
      --classes N [--aspp-channels 64 --aspp-rates 2,4,6] [--reference PATH] [--seed S]
      writes the state_dict of a freshly built network with random batch-norm statistics and
      a classifier scaled by 60, without atso metadata (as a PyTorch user's file)
  torch_networks.py compare A.safetensors B.safetensors
      prints a JSON line: identical keys, dtypes, shapes and bits?
"""
import argparse
import importlib.util
import json
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def cbr(cin, cout, kernel=3, stride=1, dilation=1):
    """Conv (no bias), BatchNorm, ReLU: atso-transfer's ConvBNReLU."""
    padding = dilation * (kernel - 1) // 2
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation,
                      bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def block(cin, cout, dilation=1):
    """Two units: atso-transfer's DoubleConv (keys .0, .1, .3, .4)."""
    return nn.Sequential(*cbr(cin, cout, dilation=dilation), *cbr(cout, cout, dilation=dilation))


class UNet(nn.Module):
    """The U-Net of any depth (len(widths) - 1 poolings); upsampling to the skip's size."""

    def __init__(self, in_ch=3, widths=(16, 32, 64, 128), classes=19):
        super().__init__()
        self.depth = len(widths) - 1
        ch = in_ch
        for i in range(self.depth):
            setattr(self, f"enc{i + 1}", block(ch, widths[i]))
            ch = widths[i]
        self.bott = block(ch, widths[-1])
        for i in reversed(range(self.depth)):
            setattr(self, f"dec{i + 1}", block(widths[i + 1] + widths[i], widths[i]))
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for i in range(self.depth):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = getattr(self, f"enc{i + 1}")(x)
            skips.append(x)
        x = self.bott(F.max_pool2d(x, 2))
        for i in reversed(range(self.depth)):
            skip = skips[i]
            up = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = getattr(self, f"dec{i + 1}")(torch.cat([up, skip], 1))
        return self.head(x)


class ASPP(nn.Module):
    def __init__(self, cin, channels, rates):
        super().__init__()
        self.pointwise = nn.Sequential(*cbr(cin, channels, kernel=1))
        self.rates = list(rates)
        for i, r in enumerate(self.rates):
            setattr(self, f"atrous{i + 1}", nn.Sequential(*cbr(cin, channels, dilation=r)))
        self.pooling = nn.Conv2d(cin, channels, 1)  # with bias, no batch norm

    def forward(self, x):
        branches = [self.pointwise(x)]
        branches += [getattr(self, f"atrous{i + 1}")(x) for i in range(len(self.rates))]
        pooled = F.relu(self.pooling(F.adaptive_avg_pool2d(x, 1)))
        branches.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return torch.cat(branches, 1)


class DeepLab(nn.Module):
    """Output stride 8: three stride-2 stages, a dilated stage 4, ASPP, bilinear logits."""

    def __init__(self, in_ch=3, widths=(16, 32, 64, 128), aspp_channels=64, aspp_rates=(2, 4, 6),
                 classes=19):
        super().__init__()
        ch = in_ch
        for i, w in enumerate(widths[:3]):
            setattr(self, f"stem{2 * i + 1}", nn.Sequential(*cbr(ch, w, stride=2)))
            setattr(self, f"stem{2 * i + 2}", nn.Sequential(*cbr(w, w)))
            ch = w
        self.stage4 = block(widths[2], widths[3], dilation=2)
        self.aspp = ASPP(widths[3], aspp_channels, aspp_rates)
        self.projection = nn.Sequential(
            *cbr(aspp_channels * (2 + len(aspp_rates)), aspp_channels, kernel=1))
        self.classifier = nn.Conv2d(aspp_channels, classes, 1)

    def forward(self, images):
        x = images
        for i in range(6):
            x = getattr(self, f"stem{i + 1}")(x)
        x = self.stage4(x)
        logits = self.classifier(self.projection(self.aspp(x)))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


# --- safetensors without the safetensors package -------------------------------------------

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16,
           "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_safetensors(path):
    """(dict name -> tensor, metadata dict) of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        raw = bytearray(data[base + begin:base + end])
        t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    """Writes tensors (little-endian, contiguous) in the safetensors layout."""
    try:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata)
        return
    except ImportError:
        pass
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def load_state_dict(path):
    """The state_dict of a file, through safetensors.torch when installed."""
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        return read_safetensors(path)[0]


# --- networks from atso metadata -------------------------------------------------------------

def network_from_architecture(architecture):
    """A network for the JSON of atso-transfer's ModelArchitecture."""
    if "unet" in architecture:
        c = architecture["unet"]["configuration"]
        return UNet(c["inputChannels"], c["widths"], c["classCount"])
    if "deepLab" in architecture:
        c = architecture["deepLab"]["configuration"]
        return DeepLab(c["inputChannels"], c["widths"], c["asppChannels"], c["asppRates"],
                       c["classCount"])
    raise ValueError(f"unknown architecture {architecture}")


def load_network(path):
    """Builds the network an `atso-transfer export` file describes and loads it (strict)."""
    _, metadata = read_safetensors(path)
    if "atso.architecture" not in metadata:
        raise ValueError(f"{path}: no atso.architecture metadata (not written by export)")
    model = network_from_architecture(json.loads(metadata["atso.architecture"]))
    model.load_state_dict(load_state_dict(path), strict=True)
    return model


def reference_class(path):
    spec = importlib.util.spec_from_file_location("torch_reference_unet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RefUNet


# --- command line ----------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    lg = sub.add_parser("logits")
    lg.add_argument("model")
    lg.add_argument("images")
    lg.add_argument("output")
    lg.add_argument("--reference")
    lg.add_argument("--classes", type=int, default=19)
    mk = sub.add_parser("make")
    mk.add_argument("output")
    mk.add_argument("--arch", choices=["unet", "deeplab"], default="unet")
    mk.add_argument("--widths", default="16,32,64,128")
    mk.add_argument("--classes", type=int, default=19)
    mk.add_argument("--aspp-channels", type=int, default=64)
    mk.add_argument("--aspp-rates", default="2,4,6")
    mk.add_argument("--reference")
    mk.add_argument("--seed", type=int, default=0)
    cp = sub.add_parser("compare")
    cp.add_argument("a")
    cp.add_argument("b")
    args = ap.parse_args()
    torch.set_num_threads(1)

    if args.command == "logits":
        if args.reference:
            model = reference_class(args.reference)(classes=args.classes)
            model.load_state_dict(load_state_dict(args.model), strict=True)
        else:
            model = load_network(args.model)
        images = read_safetensors(args.images)[0]["images"]
        with torch.no_grad():
            logits = model.eval()(images)
        write_safetensors(args.output, {"logits": logits})
        print(json.dumps({"logits": list(logits.shape), "model": type(model).__name__}))
    elif args.command == "make":
        torch.manual_seed(args.seed)
        widths = [int(w) for w in args.widths.split(",")]
        if args.arch == "unet":
            model = (reference_class(args.reference)(classes=args.classes) if args.reference
                     else UNet(3, widths, args.classes))
        else:
            model = DeepLab(3, widths, args.aspp_channels,
                            [int(r) for r in args.aspp_rates.split(",")], args.classes)
        with torch.no_grad():  # batch-norm statistics and affine parameters away from 0 / 1
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
                    m.running_mean.uniform_(-0.3, 0.3)
                    m.running_var.uniform_(0.5, 2.0)
            # logits of about +-10, as a trained network's
            (model.head if hasattr(model, "head") else model.classifier).weight.mul_(60)
        write_safetensors(args.output, model.state_dict())
        print(json.dumps({"tensors": len(model.state_dict()), "model": type(model).__name__}))
    else:
        a, b = read_safetensors(args.a)[0], read_safetensors(args.b)[0]
        different = sorted(k for k in set(a) & set(b)
                           if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
                           or not torch.equal(a[k], b[k]))
        print(json.dumps({"only_a": sorted(set(a) - set(b)), "only_b": sorted(set(b) - set(a)),
                          "different": different, "count": len(a)}))


if __name__ == "__main__":
    sys.exit(main())
