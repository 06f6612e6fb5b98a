"""Make tests/data/generator_reference.npz with the *original* PyTorch model.

Run once, in an environment that has torch (not a FaceMend dependency):
    python tools/make_generator_reference.py gan_face_generate-1.1.1-py3-none-any.whl
It loads the checkpoint with torch itself and runs the upstream Generator class
(copied verbatim from gan_face_generate/models.py) in eval mode on fixed z, so
the parity test compares our conversion against torch, not against itself.
"""
import io
import sys
import zipfile

import numpy as np
import torch
from torch import nn


class Generator(nn.Module):  # gan_face_generate/models.py, verbatim layout
    def __init__(self, ngpu, nc, nz, ngf):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, x):
        return self.main(x)


def main(wheel):
    raw = zipfile.ZipFile(wheel).read("gan_face_generate/weights.tar")
    ckpt = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    g = Generator(0, 3, 100, 64)
    g.load_state_dict(ckpt["netG_state_dict"])
    g.eval()
    z = np.random.default_rng(20261122).standard_normal((6, 100)).astype(np.float32)
    with torch.no_grad():
        out = g(torch.from_numpy(z)[:, :, None, None]).numpy()
    np.savez_compressed("tests/data/generator_reference.npz", z=z, image_nhwc=out.transpose(0, 2, 3, 1), torch_version=torch.__version__)
    print("wrote tests/data/generator_reference.npz", out.shape, out.min(), out.max())


if __name__ == "__main__":
    main(sys.argv[1])
