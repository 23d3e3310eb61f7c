import sys, time, torch, torch.nn.functional as F
from torch import nn
torch.set_num_threads(1)
from course_utils import data, metrics
C_LAT, EPOCHS, BETA = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
class KLAE(nn.Module):
    def __init__(self, c=C_LAT, h=64):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, h, 3, 2, 1), nn.GroupNorm(8, h), nn.SiLU(),
                                 nn.Conv2d(h, h, 3, 2, 1), nn.GroupNorm(8, h), nn.SiLU(),
                                 nn.Conv2d(h, h, 3, 1, 1), nn.GroupNorm(8, h), nn.SiLU(),
                                 nn.Conv2d(h, 2 * c, 1))
        self.dec = nn.Sequential(nn.Conv2d(c, h, 3, 1, 1), nn.GroupNorm(8, h), nn.SiLU(),
                                 nn.Conv2d(h, h, 3, 1, 1), nn.GroupNorm(8, h), nn.SiLU(),
                                 nn.ConvTranspose2d(h, h, 4, 2, 1), nn.GroupNorm(8, h), nn.SiLU(),
                                 nn.ConvTranspose2d(h, 1, 4, 2, 1))
    def encode(self, x):
        mu, logvar = self.enc(x).chunk(2, 1)
        return mu, logvar.clamp(-20, 10)
x, y = data.mnist("train"); xt, yt = data.mnist("test")
torch.manual_seed(0); ae = KLAE(); opt = torch.optim.Adam(ae.parameters(), lr=2e-3)
t0 = time.perf_counter(); g = torch.Generator().manual_seed(0)
for ep in range(EPOCHS):
    perm = torch.randperm(len(x), generator=g)
    for i in range(0, len(x), 128):
        b = x[perm[i:i + 128]]
        mu, lv = ae.encode(b)
        z = mu + (0.5 * lv).exp() * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(ae.dec(z), b, reduction="sum") / len(b)
        kl = 0.5 * (mu ** 2 + lv.exp() - 1 - lv).sum() / len(b)
        loss = rec + BETA * kl
        opt.zero_grad(); loss.backward(); opt.step()
    print(ep, round(rec.item(), 1), round(kl.item(), 1), flush=True)
print("train s", round(time.perf_counter() - t0))
ae.eval()
with torch.no_grad():
    mu, lv = ae.encode(xt)
    r = torch.sigmoid(ae.dec(mu))
    print("mse", F.mse_loss(r, xt).item(), "FID rec", metrics.fid(r, xt), "mu std", mu.std().item(), "sigma mean", (0.5 * lv).exp().mean().item())
torch.save(ae.state_dict(), f"/tmp/ae_{C_LAT}.pt")
